// Metric names are checked when the static is evaluated, at compile time.
static REQUESTS: weaver::Counter = weaver::Counter::new("shop-requests", "Requests");

static SIZES: weaver::Histogram = weaver::Histogram::new("shop_sizes", "Sizes", &[10.0, 1.0]);

fn main() {
    REQUESTS.inc();
    SIZES.put(1.0);
}
