//! Profiling a deployment, as Go's `ProfileGroups` does: every group at
//! once; in each, the replicas in order until one answers; that profile
//! scaled by the group's replica count (it stands for all of them); then
//! every group's profile merged into one. A group that cannot be profiled
//! is reported and left out.

use std::future::Future;
use std::sync::Arc;

use weaver_envelope::Envelope;
use weaver_proto::profile::{self, Profile};
use weaver_proto::runtime::GetProfileRequest;

use crate::status::Profiled;

/// A replica that can be asked for a profile (an envelope, or a fake in
/// tests).
pub(crate) trait Replica: Send + Sync {
    /// Which replica, for error messages.
    fn name(&self) -> String;
    /// Its profile: gzipped pprof bytes, or why not, in words.
    fn get_profile(
        &self,
        req: GetProfileRequest,
    ) -> impl Future<Output = Result<Vec<u8>, String>> + Send;
}

impl Replica for Arc<Envelope> {
    fn name(&self) -> String {
        self.handle().args().id.clone()
    }

    async fn get_profile(&self, req: GetProfileRequest) -> Result<Vec<u8>, String> {
        Envelope::get_profile(self, req)
            .await
            .map_err(|e| super::handler::error_chain(&e))
    }
}

/// Profiles `groups` (name, replicas in order) as `req` asks.
pub(crate) async fn profile_groups<R: Replica>(
    groups: Vec<(String, Vec<R>)>,
    req: GetProfileRequest,
) -> Profiled {
    let each = groups
        .iter()
        .map(|(name, replicas)| profile_group(name, replicas, req));
    let mut profiles = Vec::new();
    let mut errors = Vec::new();
    for result in futures_util::future::join_all(each).await {
        match result {
            Ok(Some(p)) => profiles.push(p),
            Ok(None) => {}
            Err(e) => errors.push(e),
        }
    }
    if profiles.is_empty() {
        return Profiled {
            data: Vec::new(),
            errors,
        };
    }
    match profile::merge(profiles) {
        Ok(merged) => Profiled {
            data: profile::encode(&merged),
            errors,
        },
        Err(e) => {
            errors.push(format!(
                "cannot merge the groups' profiles: {}",
                super::handler::error_chain(&e)
            ));
            Profiled {
                data: Vec::new(),
                errors,
            }
        }
    }
}

/// The profile of group `name`, scaled by its replica count; `None` if
/// the replica sent no data. The error names the group and the last
/// replica's reason.
async fn profile_group<R: Replica>(
    name: &str,
    replicas: &[R],
    req: GetProfileRequest,
) -> Result<Option<Profile>, String> {
    let mut last = format!("profile group {name}: it has no replicas");
    for r in replicas {
        let reply = r.get_profile(req).await;
        let decoded = reply.and_then(|data| {
            if data.is_empty() {
                return Ok(None);
            }
            profile::decode(&data)
                .map(Some)
                .map_err(|e| super::handler::error_chain(&e))
        });
        match decoded {
            Ok(Some(mut p)) => {
                if replicas.len() > 1 {
                    profile::scale(&mut p, replicas.len() as i64);
                }
                return Ok(Some(p));
            }
            Ok(None) => return Ok(None),
            Err(e) => {
                tracing::debug!(group = name, replica = %r.name(), error = %e, "cannot profile a replica");
                last = format!("profile group {name} (replica {}): {e}", r.name());
            }
        }
    }
    Err(last)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use weaver_proto::profile::{Function, Line, Location, Sample, ValueType};
    use weaver_proto::runtime::ProfileType;

    /// A replica answering with a one-function profile, or an error.
    struct Fake {
        name: &'static str,
        answer: Result<Vec<u8>, String>,
        asked: Arc<AtomicUsize>,
    }

    impl Replica for Fake {
        fn name(&self) -> String {
            self.name.to_owned()
        }

        async fn get_profile(&self, _req: GetProfileRequest) -> Result<Vec<u8>, String> {
            self.asked.fetch_add(1, Ordering::SeqCst);
            self.answer.clone()
        }
    }

    fn profile_of(function: &str, samples: i64) -> Vec<u8> {
        let p = Profile {
            sample_type: vec![ValueType { r#type: 1, unit: 2 }],
            sample: vec![Sample {
                location_id: vec![1],
                value: vec![samples],
                label: vec![],
            }],
            location: vec![Location {
                id: 1,
                line: vec![Line {
                    function_id: 1,
                    line: 3,
                    column: 0,
                }],
                ..Default::default()
            }],
            function: vec![Function {
                id: 1,
                name: 3,
                ..Default::default()
            }],
            string_table: ["", "samples", "count", function]
                .map(String::from)
                .to_vec(),
            ..Default::default()
        };
        profile::encode(&p)
    }

    fn fake(name: &'static str, answer: Result<Vec<u8>, String>, asked: &Arc<AtomicUsize>) -> Fake {
        Fake {
            name,
            answer,
            asked: asked.clone(),
        }
    }

    fn cpu() -> GetProfileRequest {
        GetProfileRequest {
            profile_type: ProfileType::Cpu as i32,
            cpu_duration_ns: 1,
        }
    }

    /// (function, value) per sample of `data`.
    fn samples(data: &[u8]) -> Vec<(String, i64)> {
        let p = profile::decode(data).unwrap();
        p.sample
            .iter()
            .map(|s| {
                let loc = p
                    .location
                    .iter()
                    .find(|l| l.id == s.location_id[0])
                    .unwrap();
                let f = p
                    .function
                    .iter()
                    .find(|f| f.id == loc.line[0].function_id)
                    .unwrap();
                (p.string_table[f.name as usize].clone(), s.value[0])
            })
            .collect()
    }

    #[tokio::test]
    async fn each_group_is_asked_until_a_replica_answers_and_scaled_by_its_size() {
        let asked = Arc::new(AtomicUsize::new(0));
        let groups = vec![
            (
                "main".to_owned(),
                vec![
                    fake("m0", Err("pipe closed".into()), &asked),
                    fake("m1", Ok(profile_of("main::serve", 4)), &asked),
                    fake("m2", Ok(profile_of("never", 1)), &asked),
                ],
            ),
            (
                "app::Cache".to_owned(),
                vec![fake("c0", Ok(profile_of("app::cache", 5)), &asked)],
            ),
        ];
        let got = profile_groups(groups, cpu()).await;
        assert_eq!(got.errors, Vec::<String>::new());
        assert_eq!(
            samples(&got.data),
            [("main::serve".to_owned(), 12), ("app::cache".to_owned(), 5)]
        );
        assert_eq!(asked.load(Ordering::SeqCst), 3, "m2 is never asked");
    }

    #[tokio::test]
    async fn a_group_that_fails_is_reported_and_the_others_kept() {
        let asked = Arc::new(AtomicUsize::new(0));
        let groups = vec![
            (
                "main".to_owned(),
                vec![fake("m0", Ok(profile_of("main::serve", 1)), &asked)],
            ),
            (
                "app::Broken".to_owned(),
                vec![
                    fake("b0", Err("busy".into()), &asked),
                    fake("b1", Ok(b"not a profile".to_vec()), &asked),
                ],
            ),
        ];
        let got = profile_groups(groups, cpu()).await;
        assert_eq!(samples(&got.data), [("main::serve".to_owned(), 1)]);
        assert_eq!(got.errors.len(), 1, "{:?}", got.errors);
        assert!(
            got.errors[0].starts_with(
                "profile group app::Broken (replica b1): the profile is not a valid pprof protobuf"
            ),
            "{:?}",
            got.errors
        );
    }

    #[tokio::test]
    async fn no_group_answering_gives_no_data_and_every_error() {
        let asked = Arc::new(AtomicUsize::new(0));
        let groups = vec![(
            "main".to_owned(),
            vec![fake("m0", Err("invalid zero duration".into()), &asked)],
        )];
        let got = profile_groups(groups, cpu()).await;
        assert!(got.data.is_empty());
        assert_eq!(
            got.errors,
            ["profile group main (replica m0): invalid zero duration"]
        );
    }
}
