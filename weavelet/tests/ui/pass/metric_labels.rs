//! The derive's and `#[metric]`'s output names nothing from the caller's
//! scope, and a family is usable from a static.
#![no_implicit_prelude]

extern crate weaver as renamed;

#[derive(renamed::MetricLabels)]
#[weaver(crate = "::renamed")]
struct Call {
    method: &'static str,
    #[weaver(label = "remote")]
    is_remote: bool,
    caller: ::std::string::String,
    shard: u16,
}

#[derive(renamed::MetricLabels)]
#[weaver(crate = "::renamed")]
struct NoLabels;

#[renamed::metric(crate = "::renamed")]
static CALLS: renamed::CounterMap<Call> = renamed::CounterMap::new("calls", "Calls");
#[renamed::metric(crate = "::renamed")]
static LATENCY: renamed::HistogramMap<NoLabels> =
    renamed::HistogramMap::new("latency", "Latency", &[1.0, 2.0]);

fn main() {
    let call = Call {
        method: "add",
        is_remote: false,
        caller: ::std::string::String::new(),
        shard: 3,
    };
    CALLS.get(&call).inc();
    LATENCY.get(&NoLabels).put(1.5);
}
