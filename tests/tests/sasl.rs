//! Both SASL mechanisms RabbitMQ offers, PLAIN and AMQPLAIN, log in with the
//! right password and are refused (403) with a wrong one.

use warren_e2e::{expect_code, start, with_timeout};

#[tokio::test]
async fn plain_and_amqplain_log_in_and_refuse_bad_passwords() -> anyhow::Result<()> {
    let broker = start().await;
    with_timeout(async {
        for mechanism in ["plain", "amqplain"] {
            let good = format!("{}?auth_mechanism={mechanism}", broker.uri());
            let conn = broker.try_connect(&good).await?;
            let ch = conn.create_channel().await?;
            assert!(ch.status().connected(), "{mechanism}");
            conn.close(200, "bye".into()).await?;

            let bad = format!(
                "{}?auth_mechanism={mechanism}",
                broker.uri_as("guest", "wrong", "/")
            );
            expect_code(
                broker.try_connect(&bad).await,
                403,
                "ACCESS_REFUSED - Login was refused using authentication mechanism",
            )?;
        }
        Ok(())
    })
    .await
}
