// `#[weaver::metric]` registers metrics only.
#[weaver::metric]
static LIMIT: u32 = 10;

fn main() {
    let _ = LIMIT;
}
