//! Checks only the Redis store has: an unreachable or silent server is `Unavailable`
//! within the deadlines (never a hang), and foreign data under our keys is `Corrupt`.

use std::time::Duration;

use sallyport::state::redis::{RedisStateStore, RedisTimeouts};
use sallyport::state::{CounterOutcome, Expect, Namespace, PutOptions, StateError, StateStore};

use crate::harness::{connect_redis, delete_prefix, redis_url, unique_prefix};

const NS: Namespace = Namespace::new("upload");
const QUICK: RedisTimeouts = RedisTimeouts {
    connect: Duration::from_millis(500),
    command: Duration::from_millis(500),
};

#[tokio::test]
async fn nothing_listening_is_unavailable() {
    // Bind then drop a listener to get a port that refuses connections.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("redis://127.0.0.1:{port}");
    let result = tokio::time::timeout(
        Duration::from_secs(10),
        RedisStateStore::connect_with(&url, "p:", QUICK),
    )
    .await
    .expect("connect must not hang");
    assert!(
        matches!(result, Err(StateError::Unavailable(_))),
        "{result:?}"
    );
}

#[tokio::test]
async fn a_silent_server_is_unavailable_not_a_hang() {
    // Accepts connections and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("redis://{}", listener.local_addr().unwrap());
    let held = tokio::spawn(async move {
        let mut sockets = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            sockets.push(socket);
        }
    });
    let outcome = tokio::time::timeout(Duration::from_secs(10), async {
        match RedisStateStore::connect_with(&url, "p:", QUICK).await {
            Err(e) => Err(e),
            Ok(store) => store.get(NS, "x").await.map(|_| ()),
        }
    })
    .await
    .expect("a silent server must not hang the caller");
    assert!(
        matches!(outcome, Err(StateError::Unavailable(_))),
        "{outcome:?}"
    );
    held.abort();
}

#[tokio::test]
async fn an_invalid_url_is_invalid_and_not_echoed() {
    let err = RedisStateStore::connect("not a url :secret@", "p:")
        .await
        .unwrap_err();
    assert!(matches!(err, StateError::Invalid(_)), "{err:?}");
    assert!(!err.to_string().contains("secret"));
    let err = RedisStateStore::connect(&redis_url(), &"p".repeat(129))
        .await
        .unwrap_err();
    assert!(matches!(err, StateError::Invalid(_)), "{err:?}");
}

#[tokio::test]
async fn foreign_data_under_our_keys_is_corrupt() {
    let prefix = unique_prefix();
    let Some(store) = connect_redis(&prefix).await else {
        return;
    };
    let _cleanup = Cleanup(prefix.clone());
    let client = redis::Client::open(redis_url()).unwrap();
    let mut con = client.get_multiplexed_async_connection().await.unwrap();
    let set = |key: String, value: &'static str| redis::cmd("SET").arg(key).arg(value).clone();

    // A record key holding a string instead of a hash.
    let _: () = set(format!("{prefix}r:upload:wrongtype"), "x")
        .query_async(&mut con)
        .await
        .unwrap();
    let err = store.get(NS, "wrongtype").await.unwrap_err();
    assert!(matches!(err, StateError::Corrupt(_)), "{err:?}");
    let err = store
        .put(NS, "wrongtype", b"v", Expect::Any, PutOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(err, StateError::Corrupt(_) | StateError::Unavailable(_)),
        "{err:?}"
    );

    // A counter that is not an integer: refused, and left as it was.
    let _: () = set(format!("{prefix}c:upload:n"), "12abc")
        .query_async(&mut con)
        .await
        .unwrap();
    let err = store.counter_add(NS, "n", 1, Some(100)).await.unwrap_err();
    assert!(matches!(err, StateError::Corrupt(_)), "{err:?}");
    let err = store.counter_get(NS, "n").await.unwrap_err();
    assert!(matches!(err, StateError::Corrupt(_)), "{err:?}");
    let raw: String = redis::cmd("GET")
        .arg(format!("{prefix}c:upload:n"))
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(raw, "12abc");
    // A healthy counter next to it still works.
    assert_eq!(
        store.counter_add(NS, "ok", 1, Some(1)).await.unwrap(),
        CounterOutcome::Applied(1)
    );
}

struct Cleanup(String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        delete_prefix(&self.0);
    }
}
