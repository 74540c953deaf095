// Metric names, bounds and histogram labels are checked when the static is
// evaluated, at compile time.
static REQUESTS: weaver::Counter = weaver::Counter::new("shop-requests", "Requests");

static SIZES: weaver::Histogram = weaver::Histogram::new("shop_sizes", "Sizes", &[10.0, 1.0]);

fn main() {
    REQUESTS.inc();
    SIZES.put(1.0);
    let _ = &BY_BUCKET;
}

#[derive(weaver::MetricLabels)]
struct Bucket {
    le: u32,
}

// `le` is Prometheus' bucket label.
static BY_BUCKET: weaver::HistogramMap<Bucket> =
    weaver::HistogramMap::new("shop_by_bucket", "Sizes", &[1.0]);
