//! Routing of a component over its group's replicas: how every deployer
//! of this workspace (the babysitter, the multiprocess test runner) cuts a
//! routed component's key space, so all of them agree.

use crate::runtime::{Assignment, RoutingInfo, Slice};

/// Routing for `component` over `replicas` (dial addresses).
///
/// Routed components get equal slices: the key space is cut into the least
/// power of two of slices at least the number of replicas, and slice `i`
/// goes to the `i mod n`-th replica in sorted order, as Service Weaver does.
pub fn routing_info(
    component: &str,
    routed: bool,
    replicas: &[String],
    version: u64,
) -> RoutingInfo {
    let mut sorted = replicas.to_vec();
    sorted.sort();
    let assignment = routed.then(|| Assignment {
        slices: equal_slices(&sorted),
        version,
    });
    RoutingInfo {
        component: component.to_string(),
        local: false,
        replicas: sorted,
        assignment,
        version,
    }
}

/// Routing that tells a weavelet to use its own instance.
pub fn local_info(component: &str) -> RoutingInfo {
    RoutingInfo {
        component: component.to_string(),
        local: true,
        ..Default::default()
    }
}

fn equal_slices(sorted: &[String]) -> Vec<Slice> {
    if sorted.is_empty() {
        return Vec::new();
    }
    let n = sorted.len().next_power_of_two() as u64;
    let width = u64::MAX / n;
    (0..n)
        .map(|i| Slice {
            start: i * width,
            replicas: vec![sorted[(i as usize) % sorted.len()].clone()],
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_cover_the_key_space_and_cycle_over_sorted_replicas() {
        let info = routing_info("c", true, &["b".into(), "a".into(), "c".into()], 7);
        assert_eq!(info.replicas, ["a", "b", "c"]);
        let a = info.assignment.unwrap();
        assert_eq!(a.version, 7);
        let owners: Vec<_> = a.slices.iter().map(|s| s.replicas[0].as_str()).collect();
        assert_eq!(owners, ["a", "b", "c", "a"]);
        assert_eq!(a.slices[0].start, 0);
        assert!(a.slices.windows(2).all(|w| w[0].start < w[1].start));
        assert!(
            routing_info("c", true, &[], 1)
                .assignment
                .unwrap()
                .slices
                .is_empty()
        );
        assert!(
            routing_info("c", false, &["a".into()], 1)
                .assignment
                .is_none()
        );
    }
}
