//! The client's own name table, consulted before the system's resolver, as
//! curl's `--resolve`: entries `HOST:PORT:ADDRESS[,ADDRESS...]` that send
//! the requests to `HOST:PORT` to those addresses, in that order. TLS
//! still verifies `HOST`: only where the bytes go changes.
//!
//! It serves hosts whose names the system cannot resolve (a test rig, a
//! server behind a load balancer reached by its own addresses, a console
//! platform with its own name service), and pins addresses without
//! touching `/etc/hosts`.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::error::Error;

/// The entries, by host and port.
#[derive(Clone, Default, PartialEq, Eq)]
pub(crate) struct NameTable {
    entries: Vec<Entry>,
}

#[derive(Clone, PartialEq, Eq)]
struct Entry {
    /// Lowercase; an IP address in its canonical form, without brackets.
    host: String,
    port: u16,
    /// In the order given; never empty.
    addrs: Vec<IpAddr>,
}

/// The form an entry takes, for error messages.
const FORM: &str = "give it as HOST:PORT:ADDRESS[,ADDRESS...], e.g. \
                    api.example.com:443:192.0.2.10,[2001:db8::10]";

impl NameTable {
    /// Adds `entry` (`HOST:PORT:ADDRESS[,ADDRESS...]`); an entry for the
    /// same host and port replaces the older one, as in curl.
    pub(crate) fn add(&mut self, entry: &str) -> Result<(), Error> {
        let entry = parse(entry)?;
        self.entries
            .retain(|e| !(e.host == entry.host && e.port == entry.port));
        self.entries.push(entry);
        Ok(())
    }

    /// The addresses of `host` (as a URL has it, without brackets) and
    /// `port`, when the table has them.
    pub(crate) fn look_up(&self, host: &str, port: u16) -> Option<Vec<SocketAddr>> {
        let host = canonical_host(host);
        let entry = self
            .entries
            .iter()
            .find(|e| e.port == port && e.host == host)?;
        Some(
            entry
                .addrs
                .iter()
                .map(|ip| SocketAddr::new(*ip, port))
                .collect(),
        )
    }
}

impl fmt::Debug for NameTable {
    /// The entries as they are written (addresses are not secret).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.entries.iter().map(|e| format!("{e}")))
            .finish()
    }
}

impl fmt::Display for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}:", self.host, self.port)?;
        } else {
            write!(f, "{}:{}:", self.host, self.port)?;
        }
        for (i, ip) in self.addrs.iter().enumerate() {
            let comma = if i == 0 { "" } else { "," };
            match ip {
                IpAddr::V4(ip) => write!(f, "{comma}{ip}")?,
                IpAddr::V6(ip) => write!(f, "{comma}[{ip}]")?,
            }
        }
        Ok(())
    }
}

/// How a host is compared: case-insensitively, and an IP address by its
/// value (`[::1]` and `[0::1]` are the same host).
fn canonical_host(host: &str) -> String {
    match host.parse::<IpAddr>() {
        Ok(ip) => ip.to_string(),
        Err(_) => host.to_ascii_lowercase(),
    }
}

fn parse(text: &str) -> Result<Entry, Error> {
    let entry = text.trim();
    let bad = |why: String| {
        Error::InvalidArgument(format!(
            "resolve entry {entry:?} is not usable: {why}; {FORM}"
        ))
    };
    if entry.contains("://") {
        return Err(bad(
            "it is a URL; give the host name alone, without a scheme".into(),
        ));
    }
    // HOST, or [IPV6] as a URL writes it.
    let (host, rest) = if let Some(bracketed) = entry.strip_prefix('[') {
        let Some((inside, rest)) = bracketed.split_once(']') else {
            return Err(bad("the host's '[' has no closing ']'".into()));
        };
        let ip = inside.parse::<Ipv6Addr>().map_err(|_| {
            bad(format!(
                "the host [{inside}] is not an IPv6 address (brackets hold one)"
            ))
        })?;
        let Some(rest) = rest.strip_prefix(':') else {
            return Err(bad("no ':' follows the host [...]".into()));
        };
        (ip.to_string(), rest)
    } else {
        let Some((host, rest)) = entry.split_once(':') else {
            return Err(bad("it has no ':' (no port, no address)".into()));
        };
        check_host(host).map_err(bad)?;
        (canonical_host(host), rest)
    };
    let Some((port, addrs)) = rest.split_once(':') else {
        return Err(bad("it has no second ':' before the addresses".into()));
    };
    let port = match port.parse::<u16>() {
        Ok(port) if port > 0 => port,
        _ => {
            return Err(bad(format!(
                "the port {port:?} is not a number from 1 to 65535"
            )))
        }
    };
    let addrs = addrs
        .split(',')
        .map(|addr| parse_address(addr.trim()).map_err(&bad))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Entry { host, port, addrs })
}

fn check_host(host: &str) -> Result<(), String> {
    if host.is_empty() {
        return Err("the host is empty".into());
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_');
    if let Some(c) = host.chars().find(|&c| !allowed(c)) {
        return Err(format!(
            "the host {host:?} holds {c:?}, which no host name has (an IPv6 host goes in \
             brackets)"
        ));
    }
    Ok(())
}

fn parse_address(addr: &str) -> Result<IpAddr, String> {
    if addr.is_empty() {
        return Err("an address is empty (no address, or two commas in a row?)".into());
    }
    if let Some(inside) = addr.strip_prefix('[').and_then(|a| a.strip_suffix(']')) {
        return inside
            .parse::<Ipv6Addr>()
            .map(IpAddr::V6)
            .map_err(|_| format!("the address [{inside}] is not an IPv6 address"));
    }
    if let Ok(ip) = addr.parse::<Ipv4Addr>() {
        return Ok(IpAddr::V4(ip));
    }
    if addr.parse::<Ipv6Addr>().is_ok() {
        return Err(format!(
            "the IPv6 address {addr} needs brackets: write [{addr}]"
        ));
    }
    Err(format!(
        "the address {addr:?} is not an IPv4 address nor an IPv6 address in brackets (a \
         host name cannot stand for an address here)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(entries: &[&str]) -> NameTable {
        let mut table = NameTable::default();
        for entry in entries {
            table.add(entry).unwrap();
        }
        table
    }

    fn addrs(table: &NameTable, host: &str, port: u16) -> Option<Vec<String>> {
        table
            .look_up(host, port)
            .map(|a| a.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn entries_are_looked_up_by_host_and_port() {
        let t = table(&[
            "API.Example.com:443:192.0.2.1,[2001:db8::1], 192.0.2.2",
            "[::1]:8080:127.0.0.1",
        ]);
        assert_eq!(
            addrs(&t, "api.example.COM", 443).unwrap(),
            ["192.0.2.1:443", "[2001:db8::1]:443", "192.0.2.2:443"]
        );
        assert_eq!(addrs(&t, "api.example.com", 80), None);
        assert_eq!(addrs(&t, "other.example.com", 443), None);
        assert_eq!(addrs(&t, "0:0::1", 8080).unwrap(), ["127.0.0.1:8080"]);
        assert_eq!(
            format!("{t:?}"),
            r#"["api.example.com:443:192.0.2.1,[2001:db8::1],192.0.2.2", "[::1]:8080:127.0.0.1"]"#
        );
    }

    #[test]
    fn a_later_entry_replaces_one_for_the_same_host_and_port() {
        let t = table(&["h:1:192.0.2.1", "H:1:192.0.2.2", "h:2:192.0.2.3"]);
        assert_eq!(addrs(&t, "h", 1).unwrap(), ["192.0.2.2:1"]);
        assert_eq!(addrs(&t, "h", 2).unwrap(), ["192.0.2.3:2"]);
    }

    #[test]
    fn malformed_entries_say_what_is_wrong() {
        for (entry, what) in [
            ("", "no ':'"),
            ("host", "no ':'"),
            ("host:443", "no second ':'"),
            (":443:192.0.2.1", "host is empty"),
            ("ho st:443:192.0.2.1", "holds ' '"),
            ("http://h:443:192.0.2.1", "it is a URL"),
            ("h/x:443:192.0.2.1", "holds '/'"),
            ("h:0:192.0.2.1", "not a number from 1 to 65535"),
            ("h:65536:192.0.2.1", "not a number from 1 to 65535"),
            ("h:port:192.0.2.1", "not a number from 1 to 65535"),
            ("h:443:", "an address is empty"),
            ("h:443:192.0.2.1,,192.0.2.2", "an address is empty"),
            ("h:443:192.0.2.1,", "an address is empty"),
            ("h:443:::1", "needs brackets: write [::1]"),
            ("h:443:[192.0.2.1]", "not an IPv6 address"),
            ("h:443:example.com", "not an IPv4 address"),
            ("h:443:192.0.2.256", "not an IPv4 address"),
            ("[::1:443:192.0.2.1", "no closing ']'"),
            ("[h]:443:192.0.2.1", "not an IPv6 address"),
            ("[::1]443:192.0.2.1", "no ':' follows"),
        ] {
            let err = table(&[]).add(entry).unwrap_err();
            assert!(matches!(err, Error::InvalidArgument(_)), "{entry}: {err:?}");
            let text = err.to_string();
            assert!(text.contains(what), "{entry:?}: {text}");
            assert!(text.contains("HOST:PORT:ADDRESS"), "{entry:?}: {text}");
        }
    }
}
