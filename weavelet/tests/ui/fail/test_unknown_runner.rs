#[weaver::test(runners = [local, remote])]
async fn runs(_t: &weaver::testing::Env) -> weaver::Result<()> {
    Ok(())
}

fn main() {}
