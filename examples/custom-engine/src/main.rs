//! An engine with a type of its own, configured like the stock one (`DTP_*`).

#[tokio::main]
async fn main() -> std::process::ExitCode {
    dtp_engine::serve_from_env("custom-engine", |engine| {
        engine.register(custom_engine::SendInvoice)
    })
    .await
}
