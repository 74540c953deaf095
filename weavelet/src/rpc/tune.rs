//! How a caller alone on its connection waits for its reply, learnt per
//! connection by timing.
//!
//! The best way to wait depends on where the peer runs, which a process
//! cannot see:
//!
//! - On our CPU, the peer often runs as soon as our request wakes it, and
//!   its reply is there when our send returns: reading it right away
//!   ([`Wait::Direct`]) saves the trip through the runtime. (Giving the CPU
//!   away with `sched_yield` before or after a first look was measured too:
//!   slower than either.)
//! - On a CPU of its own, the reply is not there right after sending, and
//!   waiting through the runtime is the way. Asking to be woken by the
//!   peer's read of the request ([`Wait::Early`], `Stream::set_early_wake`)
//!   gets our idle CPU awake by the time the reply comes, which saves its
//!   wake-up latency on a VM; [`Wait::Runtime`] waits without that.
//!
//! A [`Tuner`] times [`TRIAL_CALLS`] lone calls with each strategy in turn,
//! keeps the one with the lowest median for [`SETTLED_CALLS`] lone calls, then
//! tries again, since peers move.

use std::time::Duration;

/// How a lone caller waits for its reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wait {
    /// Read right after sending; if the reply is not there, wait through
    /// the runtime.
    Direct,
    /// Wait through the runtime, woken early by the peer's read.
    Early,
    /// Wait through the runtime.
    Runtime,
}

impl Wait {
    /// Every strategy, in trial order.
    const ALL: [Wait; 3] = [Wait::Direct, Wait::Early, Wait::Runtime];

    /// Whether the caller reads its reply itself before waiting.
    pub(crate) fn reads_directly(self) -> bool {
        self == Wait::Direct
    }

    /// Whether the peer's reads should wake this process.
    pub(crate) fn wakes_early(self) -> bool {
        self == Wait::Early
    }
}

/// Lone calls timed per strategy in a trial.
pub(crate) const TRIAL_CALLS: usize = 64;

/// Lone calls between trials.
pub(crate) const SETTLED_CALLS: u32 = 16_384;

/// A strategy wins only if its median beats the simpler ones' by this
/// factor: the earlier strategies in [`Wait::ALL`] cost less CPU.
const MARGIN: f64 = 0.95;

/// Learns the fastest [`Wait`] for one connection.
#[derive(Debug)]
pub(crate) struct Tuner {
    phase: Phase,
    /// Times of the current trial strategy's calls.
    times: Vec<Duration>,
    /// The best strategy of this trial so far, and its median.
    best: Option<(Wait, Duration)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Timing `Wait::ALL[i]`.
    Trial(usize),
    /// Using a strategy; lone calls made since the trial.
    Settled(Wait, u32),
}

impl Default for Tuner {
    fn default() -> Tuner {
        Tuner {
            phase: Phase::Trial(0),
            times: Vec::with_capacity(TRIAL_CALLS),
            best: None,
        }
    }
}

impl Tuner {
    /// The strategy for the next lone call, and whether to time it (and
    /// then [`Tuner::record`] its time).
    pub(crate) fn next(&mut self) -> (Wait, bool) {
        match &mut self.phase {
            Phase::Trial(i) => (Wait::ALL[*i], true),
            Phase::Settled(wait, calls) => {
                let wait = *wait;
                *calls += 1;
                if *calls >= SETTLED_CALLS {
                    *self = Tuner::default();
                }
                (wait, false)
            }
        }
    }

    /// The strategy now in use, for calls that are not alone.
    pub(crate) fn current(&self) -> Wait {
        match self.phase {
            Phase::Trial(i) => Wait::ALL[i],
            Phase::Settled(wait, _) => wait,
        }
    }

    /// Records the time of a lone call made as [`Tuner::next`] said.
    pub(crate) fn record(&mut self, took: Duration) {
        let Phase::Trial(i) = self.phase else {
            return;
        };
        self.times.push(took);
        if self.times.len() < TRIAL_CALLS {
            return;
        }
        // The median: a call that was preempted must not decide.
        let (_, &mut median, _) = self.times.select_nth_unstable(TRIAL_CALLS / 2);
        self.times.clear();
        let wait = Wait::ALL[i];
        self.best = match self.best {
            Some((_, best)) if median.as_secs_f64() < best.as_secs_f64() * MARGIN => {
                Some((wait, median))
            }
            None => Some((wait, median)),
            kept => kept,
        };
        if i + 1 < Wait::ALL.len() {
            self.phase = Phase::Trial(i + 1);
        } else if let Some((wait, median)) = self.best.take() {
            tracing::debug!(
                ?wait,
                median_us = median.as_secs_f64() * 1e6,
                "lone calls tuned"
            );
            self.phase = Phase::Settled(wait, 0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs one trial in which strategy `w` takes `time(w)` per call.
    fn trial(tuner: &mut Tuner, time: impl Fn(Wait) -> Duration) {
        for _ in 0..TRIAL_CALLS * Wait::ALL.len() {
            let (wait, timed) = tuner.next();
            assert!(timed);
            tuner.record(time(wait));
        }
    }

    fn us(n: u64) -> Duration {
        Duration::from_micros(n)
    }

    #[test]
    fn the_fastest_strategy_wins_and_is_kept_until_the_next_trial() {
        let mut tuner = Tuner::default();
        trial(
            &mut tuner,
            |w| if w == Wait::Early { us(50) } else { us(60) },
        );
        assert_eq!(tuner.current(), Wait::Early);
        for _ in 0..SETTLED_CALLS - 1 {
            assert_eq!(tuner.next(), (Wait::Early, false));
        }
        // The last settled call starts a new trial.
        assert_eq!(tuner.next(), (Wait::Early, false));
        assert_eq!(tuner.next(), (Wait::Direct, true));
        trial(
            &mut tuner,
            |w| if w == Wait::Runtime { us(9) } else { us(12) },
        );
        assert_eq!(tuner.current(), Wait::Runtime);
    }

    #[test]
    fn a_marginal_gain_keeps_the_cheaper_strategy() {
        let mut tuner = Tuner::default();
        trial(&mut tuner, |w| match w {
            Wait::Direct => us(100),
            _ => us(98),
        });
        assert_eq!(tuner.current(), Wait::Direct);
    }

    #[test]
    fn outliers_do_not_decide() {
        let mut tuner = Tuner::default();
        let mut n = 0u32;
        for _ in 0..TRIAL_CALLS * Wait::ALL.len() {
            let (wait, _) = tuner.next();
            n += 1;
            // Direct is fast but for a few huge stalls; Runtime is steady.
            let took = match wait {
                Wait::Direct if n.is_multiple_of(10) => us(10_000),
                Wait::Direct => us(10),
                _ => us(20),
            };
            tuner.record(took);
        }
        assert_eq!(tuner.current(), Wait::Direct);
    }
}
