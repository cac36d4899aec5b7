//! Which address a request comes from: the socket's peer, or the client a
//! trusted reverse proxy forwards for.

/// The client behind a request from `peer`; see [`HttpConfig::client_address`](super::HttpConfig::client_address).
pub(super) fn client_address(
    trusted: &[std::net::IpAddr],
    peer: Option<std::net::IpAddr>,
    forwarded: Option<&str>,
    x_forwarded_for: Option<&str>,
) -> Option<std::net::IpAddr> {
    let peer = peer?;
    if !trusted.contains(&peer) {
        return Some(peer);
    }
    // Hops in the order they were added, the nearest proxy's last.
    let hops: Vec<std::net::IpAddr> = match (forwarded, x_forwarded_for) {
        (Some(f), _) => f
            .split(',')
            .filter_map(|element| {
                element.split(';').find_map(|pair| {
                    let (name, value) = pair.trim().split_once('=')?;
                    name.trim()
                        .eq_ignore_ascii_case("for")
                        .then(|| parse_node(value.trim()))?
                })
            })
            .collect(),
        (None, Some(x)) => x.split(',').filter_map(|a| parse_node(a.trim())).collect(),
        (None, None) => return Some(peer),
    };
    // Walk back from the nearest hop past the trusted proxies; the first
    // address not trusted is the client. All trusted: the farthest one.
    hops.iter()
        .rev()
        .find(|a| !trusted.contains(a))
        .or(hops.first())
        .copied()
        .or(Some(peer))
}

/// An address as `Forwarded` or `X-Forwarded-For` writes it: `1.2.3.4`,
/// `1.2.3.4:80`, `"[2001:db8::1]:80"`, `2001:db8::1`.
fn parse_node(text: &str) -> Option<std::net::IpAddr> {
    let text = text.trim_matches('"');
    if let Ok(ip) = text.parse() {
        return Some(ip);
    }
    if let Ok(sock) = text.parse::<std::net::SocketAddr>() {
        return Some(sock.ip());
    }
    text.strip_prefix('[')
        .and_then(|t| t.split_once(']'))
        .and_then(|(ip, _)| ip.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_address_comes_from_trusted_proxies_only() {
        let proxy: std::net::IpAddr = "10.0.0.1".parse().unwrap();
        let client: std::net::IpAddr = "203.0.113.7".parse().unwrap();
        let trusted = [proxy];
        // Not from a proxy: the header is the client's own claim, ignored.
        assert_eq!(
            client_address(&trusted, Some(client), None, Some("1.1.1.1")),
            Some(client)
        );
        assert_eq!(
            client_address(&trusted, Some(proxy), None, Some("203.0.113.7")),
            Some(client)
        );
        // A client that sends its own header gets the proxy's append after it.
        assert_eq!(
            client_address(&trusted, Some(proxy), None, Some("1.1.1.1, 203.0.113.7")),
            Some(client)
        );
        assert_eq!(
            client_address(
                &trusted,
                Some(proxy),
                Some(r#"for="[2001:db8::1]:4711";proto=https, for=203.0.113.7"#),
                Some("9.9.9.9")
            ),
            Some(client)
        );
        assert_eq!(
            client_address(&trusted, Some(proxy), Some("for=unknown"), None),
            Some(proxy)
        );
        assert_eq!(client_address(&[], None, None, Some("1.1.1.1")), None);
    }
}
