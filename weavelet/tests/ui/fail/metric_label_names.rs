// Two fields cannot carry the same label name, and Prometheus reserves
// names starting with `__`.
#[derive(weaver::MetricLabels)]
struct Labels {
    method: &'static str,
    #[weaver(label = "method")]
    method_name: String,
    #[weaver(label = "__reserved")]
    shard: u32,
}

fn main() {}
