//! Runs the fake Google API standalone: `cargo run --example fake_upstream -- --port 8090`.
//! Keys name their behaviour (see `gemgate::fake_upstream::Behaviour`), e.g.
//! `AIzaok-00000000000000000000000000000001` answers, `AIzarpm30-…` gets 429s.

use clap::Parser;

#[derive(Parser)]
struct Args {
    /// Port on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 0)]
    port: u16,
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let fake = gemgate::fake_upstream::FakeUpstream::start_on(&format!("127.0.0.1:{}", args.port)).await?;
    // The first line is machine-read by the SDK tests: keep its shape.
    println!("fake upstream listening on {}", fake.base_url());
    tokio::signal::ctrl_c().await?;
    fake.stop().await;
    Ok(())
}
