//! A mixed load over two tenants (CI's reduced size of the `mixed-load` bench): no server
//! error, and no answer holds a row of the other tenant.

use herald_tests::{TestApp, load};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixed_load_over_two_tenants_has_no_server_error_and_no_crossed_rows() {
    // The sender runs, as in production: campaign starts queue and send real messages.
    let app = TestApp::spawn_config(|c| c.run_sender = true).await;
    let tenants = load::two_tenants(&app).await;

    let report = load::run(
        &app.http,
        std::slice::from_ref(&app.base),
        tenants,
        2_000,
        32,
    )
    .await;
    eprintln!("{}", report.summary());
    report.assert_all_succeeded();
}
