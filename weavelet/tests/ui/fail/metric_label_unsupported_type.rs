// A label is a string, bool or integer: a float field is refused, and the
// error points at its type.
#[derive(weaver::MetricLabels)]
struct Labels {
    method: &'static str,
    ratio: f64,
}

fn main() {}
