//! Which addresses a tool may reach. Loopback, private, link-local, shared (CGNAT), multicast
//! and reserved addresses are refused unless the operator allows them (`AGENTRY_EGRESS_ALLOW`:
//! hosts or CIDRs); cloud-metadata addresses are refused whatever the operator says. The check
//! is made on the addresses a name resolves to, so a public name pointing inside is refused too.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The operator's exceptions to the internal-address rule.
#[derive(Clone, Debug, Default)]
pub struct Egress {
    hosts: Vec<String>,
    nets: Vec<(IpAddr, u8)>,
}

impl Egress {
    /// Parses a comma-separated list of host names, addresses and CIDRs
    /// (`localhost,10.0.0.0/8,::1`).
    pub fn parse(list: &str) -> Result<Egress, String> {
        let mut e = Egress::default();
        for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            if let Some((addr, bits)) = item.split_once('/') {
                let ip: IpAddr = addr
                    .parse()
                    .map_err(|_| format!("{item}: not an address/prefix"))?;
                let max = if ip.is_ipv4() { 32 } else { 128 };
                let bits: u8 = bits
                    .parse()
                    .ok()
                    .filter(|b| *b <= max)
                    .ok_or_else(|| format!("{item}: the prefix length must be 0 to {max}"))?;
                e.nets.push((ip, bits));
            } else if let Ok(ip) = item.trim_matches(['[', ']']).parse::<IpAddr>() {
                e.nets.push((ip, if ip.is_ipv4() { 32 } else { 128 }));
            } else if item
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
            {
                e.hosts.push(item.to_ascii_lowercase());
            } else {
                return Err(format!("{item}: not a host name, address or CIDR"));
            }
        }
        Ok(e)
    }

    /// Whether `host` (as the URL names it) may be reached at `ip`. The error says why not.
    pub fn check(&self, host: &str, ip: IpAddr) -> Result<(), String> {
        let ip = canonical(ip);
        if is_metadata(ip) {
            return Err(format!(
                "{host} resolves to {ip}, a cloud metadata address, which tools may never reach"
            ));
        }
        if !is_internal(ip) {
            return Ok(());
        }
        let host = host.trim_matches(['[', ']']).to_ascii_lowercase();
        if self.hosts.contains(&host) || self.nets.iter().any(|n| contains(*n, ip)) {
            return Ok(());
        }
        Err(format!(
            "{host} resolves to {ip}, an internal address; the operator has not allowed it \
             (AGENTRY_EGRESS_ALLOW)"
        ))
    }
}

/// An IPv4 address carried in IPv6 (mapped `::ffff:a.b.c.d` or NAT64 `64:ff9b::a.b.c.d`) is
/// judged as the IPv4 address it is.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return IpAddr::V4(v4);
            }
            let s = v6.segments();
            if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0] {
                let o = v6.octets();
                return IpAddr::V4(Ipv4Addr::new(o[12], o[13], o[14], o[15]));
            }
            IpAddr::V6(v6)
        }
        v4 => v4,
    }
}

fn is_metadata(ip: IpAddr) -> bool {
    const V4: [Ipv4Addr; 4] = [
        Ipv4Addr::new(169, 254, 169, 254), // AWS, GCP, Azure, OpenStack, …
        Ipv4Addr::new(169, 254, 170, 2),   // AWS ECS task metadata
        Ipv4Addr::new(100, 100, 100, 200), // Alibaba Cloud
        Ipv4Addr::new(168, 63, 129, 16),   // Azure wire server
    ];
    const V6: [Ipv6Addr; 1] = [Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254)]; // AWS
    match ip {
        IpAddr::V4(v4) => V4.contains(&v4),
        IpAddr::V6(v6) => V6.contains(&v6),
    }
}

fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || o[0] == 0
                || (o[0] == 100 && (64..128).contains(&o[1])) // shared address space (CGNAT)
                || (o[0] == 192 && o[1] == 0 && o[2] == 0) // IETF protocol assignments
                || (o[0] == 198 && (18..20).contains(&o[1])) // benchmarking
                || o[0] >= 240 // reserved
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00 // unique local
                || (s[0] & 0xffc0) == 0xfe80 // link-local
                || (s[0] & 0xffc0) == 0xfec0 // site-local (deprecated)
        }
    }
}

fn contains((net, bits): (IpAddr, u8), ip: IpAddr) -> bool {
    match (net, ip) {
        (IpAddr::V4(n), IpAddr::V4(a)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(bits)).unwrap_or(0);
            u32::from(n) & mask == u32::from(a) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(a)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(bits)).unwrap_or(0);
            u128::from(n) & mask == u128::from(a) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
    }

    #[test]
    fn internal_addresses_are_refused_by_default() {
        let e = Egress::default();
        for a in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.1.1",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "fd12::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "64:ff9b::a00:1",
        ] {
            assert!(e.check("h", ip(a)).is_err(), "{a}");
        }
        for a in ["93.184.216.34", "2606:4700::1", "8.8.8.8"] {
            assert!(e.check("h", ip(a)).is_ok(), "{a}");
        }
    }

    #[test]
    fn the_operator_allows_hosts_and_nets_but_never_metadata() {
        let e = Egress::parse("localhost, 10.0.0.0/8,::1 ,169.254.0.0/16").unwrap_or_default();
        assert!(e.check("localhost", ip("127.0.0.1")).is_ok());
        assert!(e.check("other", ip("127.0.0.1")).is_err());
        assert!(e.check("x", ip("10.9.9.9")).is_ok());
        assert!(e.check("x", ip("11.0.0.1")).is_ok());
        assert!(e.check("[::1]", ip("::1")).is_ok());
        assert!(e.check("x", ip("169.254.1.1")).is_ok());
        assert!(e.check("x", ip("169.254.169.254")).is_err());
        assert!(e.check("x", ip("::ffff:169.254.169.254")).is_err());
        assert!(e.check("x", ip("fd00:ec2::254")).is_err());
        assert!(Egress::parse("10.0.0.0/33").is_err());
        assert!(Egress::parse("a b").is_err());
        assert!(Egress::parse("").is_ok());
    }
}
