//! The accept loop's caps over real sockets: the total cap holds across
//! addresses' worth of connections, a freed place is reused, and requests
//! inside the caps are served.

use std::time::Duration;

use collab_server::{serve, HttpConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn server(limits: HttpConfig) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let service = |_peer: std::net::SocketAddr| {
        hyper::service::service_fn(|_req| async {
            Ok::<_, std::convert::Infallible>(hyper::Response::new(http_body_util::Full::new(
                hyper::body::Bytes::from_static(b"ok"),
            )))
        })
    };
    tokio::spawn(serve(listener, service, limits, std::future::pending()));
    addr
}

/// Whether the server closes the connection within `wait`.
async fn closed_within(tcp: &mut TcpStream, wait: Duration) -> bool {
    let mut buf = [0u8; 256];
    let read_all = async {
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(wait, read_all).await.is_ok()
}

async fn get(addr: std::net::SocketAddr) -> String {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_string(&mut answer)).await;
    answer
}

#[tokio::test]
async fn the_total_cap_closes_the_connection_over_it() {
    let mut limits = HttpConfig::default();
    limits.max_connections = 3;
    limits.header_timeout = Duration::from_secs(30);
    let addr = server(limits).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(TcpStream::connect(addr).await.unwrap());
    }
    let mut over = TcpStream::connect(addr).await.unwrap();
    assert!(closed_within(&mut over, Duration::from_secs(2)).await);
    for tcp in &mut held {
        assert!(
            !closed_within(tcp, Duration::from_millis(100)).await,
            "within the cap stays open"
        );
    }
    drop(held.pop());
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        get(addr).await.starts_with("HTTP/1.1 200"),
        "a freed place serves"
    );
}

#[tokio::test]
async fn a_silent_connection_is_closed_after_the_header_timeout() {
    let mut limits = HttpConfig::default();
    limits.header_timeout = Duration::from_millis(300);
    let addr = server(limits).await;
    let mut silent = TcpStream::connect(addr).await.unwrap();
    assert!(closed_within(&mut silent, Duration::from_secs(3)).await);
    assert!(get(addr).await.starts_with("HTTP/1.1 200"));
}

#[tokio::test]
async fn shutdown_stops_accepting() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let service = |_peer: std::net::SocketAddr| {
        hyper::service::service_fn(|_req| async {
            Ok::<_, std::convert::Infallible>(hyper::Response::new(http_body_util::Full::new(
                hyper::body::Bytes::from_static(b"ok"),
            )))
        })
    };
    let served = tokio::spawn(serve(listener, service, HttpConfig::default(), async {
        let _ = stopped.await;
    }));
    assert!(get(addr).await.starts_with("HTTP/1.1 200"));
    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(5), served)
        .await
        .expect("serve returns")
        .unwrap();
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "the listener is closed"
    );
}
