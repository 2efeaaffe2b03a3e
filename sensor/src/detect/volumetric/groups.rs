//! Protected host groups resolved from the configuration: longest-prefix
//! lookup of a host's group and the group's thresholds per vector.

use std::net::IpAddr;

use ipnet::IpNet;

use super::vector::{Vector, ALL, COUNT};
use crate::config::{
    AggregateConfig, BaselineConfig, HostGroupConfig, VolumetricConfig, DEFAULT_MBPS,
    DEFAULT_NETWORK_MBPS, DEFAULT_NETWORK_PPS, DEFAULT_PPS, DEFAULT_PREFIX_MBPS,
    DEFAULT_PREFIX_PPS,
};
use crate::netset::NetSet;

/// One group's resolved settings.
#[derive(Clone, Debug)]
pub struct Group {
    /// Name (reported as `group`).
    pub name: String,
    /// Packets/s threshold per vector, by [`Vector::index`].
    pub pps: [u64; COUNT],
    /// Bits/s threshold per vector, by [`Vector::index`].
    pub bps: [u64; COUNT],
    /// Learned-baseline settings, if on.
    pub baseline: Option<BaselineConfig>,
    /// Per-second decay of the baseline average (from its half-life).
    pub decay: f64,
    /// Thresholds of each automatic prefix of the group.
    pub prefix: Limits,
    /// Thresholds of the whole group.
    pub network: Limits,
    /// The group's networks, as configured.
    pub networks: Vec<IpNet>,
}

/// Thresholds of an aggregate, per vector.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Packets/s, by [`Vector::index`].
    pub pps: [u64; COUNT],
    /// Bits/s, by [`Vector::index`].
    pub bps: [u64; COUNT],
}

impl Limits {
    fn from_config(a: Option<&AggregateConfig>, pps: u64, mbps: u64) -> Limits {
        let base_pps = a.and_then(|a| a.pps).unwrap_or(pps);
        let base_mbps = a.and_then(|a| a.mbps).unwrap_or(mbps);
        let mut l = Limits {
            pps: [base_pps; COUNT],
            bps: [base_mbps.saturating_mul(1_000_000); COUNT],
        };
        for v in ALL {
            if let Some(t) = a.and_then(|a| a.vectors.get(v.name())) {
                if let Some(p) = t.pps {
                    l.pps[v.index()] = p;
                }
                if let Some(m) = t.mbps {
                    l.bps[v.index()] = m.saturating_mul(1_000_000);
                }
            }
        }
        l
    }

    /// The packets/s threshold of `v`.
    #[inline]
    pub fn pps(&self, v: Vector) -> u64 {
        self.pps.get(v.index()).copied().unwrap_or(u64::MAX)
    }

    /// The bits/s threshold of `v`.
    #[inline]
    pub fn bps(&self, v: Vector) -> u64 {
        self.bps.get(v.index()).copied().unwrap_or(u64::MAX)
    }
}

impl Group {
    fn from_config(g: &HostGroupConfig) -> Group {
        let base_pps = g.pps.unwrap_or(DEFAULT_PPS);
        let base_mbps = g.mbps.unwrap_or(DEFAULT_MBPS);
        let mut pps = [base_pps; COUNT];
        let mut bps = [base_mbps.saturating_mul(1_000_000); COUNT];
        for v in ALL {
            if let Some(t) = g.vectors.get(v.name()) {
                if let Some(p) = t.pps {
                    pps[v.index()] = p;
                }
                if let Some(m) = t.mbps {
                    bps[v.index()] = m.saturating_mul(1_000_000);
                }
            }
        }
        let decay = g
            .baseline
            .map_or(1.0, |b| 0.5f64.powf(1.0 / b.half_life_secs.max(1) as f64));
        Group {
            name: g.name.clone(),
            pps,
            bps,
            baseline: g.baseline,
            decay,
            prefix: Limits::from_config(g.prefix.as_ref(), DEFAULT_PREFIX_PPS, DEFAULT_PREFIX_MBPS),
            network: Limits::from_config(
                g.network.as_ref(),
                DEFAULT_NETWORK_PPS,
                DEFAULT_NETWORK_MBPS,
            ),
            networks: g.networks.clone(),
        }
    }

    /// The packets/s threshold of `v`.
    #[inline]
    pub fn pps(&self, v: Vector) -> u64 {
        self.pps.get(v.index()).copied().unwrap_or(DEFAULT_PPS)
    }

    /// The bits/s threshold of `v`.
    #[inline]
    pub fn bps(&self, v: Vector) -> u64 {
        self.bps
            .get(v.index())
            .copied()
            .unwrap_or(DEFAULT_MBPS * 1_000_000)
    }
}

/// Every group and a longest-prefix index over their networks.
#[derive(Clone, Debug)]
pub struct GroupTable {
    groups: Vec<Group>,
    /// (network, mask, group), longest prefix first.
    v4: Vec<(u32, u32, u16)>,
    v6: Vec<(u128, u128, u16)>,
    /// The first octets some IPv4 network covers (a 256-bit set): most
    /// sources of a spoofed flood are outside every protected network and
    /// are turned away by one bit test instead of a scan of `v4`.
    v4_octets: [u64; 4],
}

/// Whether bit `o` of a 256-bit set is set.
#[inline]
fn has_octet(set: &[u64; 4], o: u32) -> bool {
    set.get((o >> 6) as usize)
        .is_some_and(|w| (w >> (o & 63)) & 1 == 1)
}

impl GroupTable {
    /// Resolves `cfg.groups`; with none, one `default` group over
    /// `protected`.
    pub fn new(cfg: &VolumetricConfig, protected: &NetSet) -> GroupTable {
        let groups: Vec<HostGroupConfig> = if cfg.groups.is_empty() {
            vec![HostGroupConfig {
                name: "default".into(),
                networks: protected.networks().to_vec(),
                pps: None,
                mbps: None,
                vectors: Default::default(),
                baseline: None,
                prefix: None,
                network: None,
            }]
        } else {
            cfg.groups.clone()
        };
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for (gi, g) in groups.iter().enumerate() {
            let gi = u16::try_from(gi).unwrap_or(u16::MAX);
            for net in &g.networks {
                match net.trunc() {
                    IpNet::V4(n) => {
                        let mask = u32::from(n.netmask());
                        v4.push((u32::from(n.network()) & mask, mask, gi));
                    }
                    IpNet::V6(n) => {
                        let mask = u128::from(n.netmask());
                        v6.push((u128::from(n.network()) & mask, mask, gi));
                    }
                }
            }
        }
        // Longest prefix first; ties keep configuration order (stable).
        v4.sort_by_key(|&(_, mask, _)| std::cmp::Reverse(mask.count_ones()));
        v6.sort_by_key(|&(_, mask, _)| std::cmp::Reverse(mask.count_ones()));
        let mut v4_octets = [0u64; 4];
        for &(net, mask, _) in &v4 {
            for o in (net >> 24)..=((net | !mask) >> 24) {
                if let Some(w) = v4_octets.get_mut((o >> 6) as usize) {
                    *w |= 1 << (o & 63);
                }
            }
        }
        GroupTable {
            groups: groups.iter().map(Group::from_config).collect(),
            v4,
            v6,
            v4_octets,
        }
    }

    /// The group protecting `ip`, if any.
    #[inline]
    pub fn lookup(&self, ip: IpAddr) -> Option<u16> {
        self.lookup_len(ip).map(|(group, _)| group)
    }

    /// The group protecting `ip` and the prefix length of its network
    /// that matched, counted in IPv4-mapped bits for IPv4 (a /16 is 112).
    #[inline]
    pub fn lookup_len(&self, ip: IpAddr) -> Option<(u16, u8)> {
        match ip {
            IpAddr::V4(a) => {
                let a = u32::from(a);
                if !has_octet(&self.v4_octets, a >> 24) {
                    return None;
                }
                self.v4
                    .iter()
                    .find(|&&(net, mask, _)| a & mask == net)
                    .map(|t| (t.2, 96 + t.1.count_ones() as u8))
            }
            IpAddr::V6(a) => {
                let a = u128::from(a);
                self.v6
                    .iter()
                    .find(|&&(net, mask, _)| a & mask == net)
                    .map(|t| (t.2, t.1.count_ones() as u8))
            }
        }
    }

    /// Group number `i`.
    #[inline]
    pub fn get(&self, i: u16) -> Option<&Group> {
        self.groups.get(usize::from(i))
    }

    /// Number of groups.
    pub fn len(&self) -> usize {
        self.groups.len()
    }

    /// Whether there are no groups.
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ThresholdConfig;

    fn group(name: &str, nets: &[&str], pps: Option<u64>) -> HostGroupConfig {
        HostGroupConfig {
            name: name.into(),
            networks: nets.iter().map(|n| n.parse().unwrap()).collect(),
            pps,
            mbps: None,
            vectors: Default::default(),
            baseline: None,
            prefix: None,
            network: None,
        }
    }

    #[test]
    fn longest_prefix_wins_and_settings_do_not_leak_between_groups() {
        let mut web = group("web", &["10.1.0.0/16", "fd00:1::/32"], Some(5_000));
        web.vectors.insert(
            "syn_flood".into(),
            ThresholdConfig {
                pps: Some(1_000),
                mbps: None,
            },
        );
        let cfg = VolumetricConfig {
            groups: vec![group("all", &["10.0.0.0/8"], None), web],
            ..VolumetricConfig::default()
        };
        let t = GroupTable::new(&cfg, &NetSet::private_defaults());
        let all = t.lookup("10.2.0.1".parse().unwrap()).unwrap();
        let web = t.lookup("10.1.0.1".parse().unwrap()).unwrap();
        assert_eq!(t.lookup("fd00:1::5".parse().unwrap()), Some(web));
        assert_eq!(t.lookup("192.168.0.1".parse().unwrap()), None);
        let (all, web) = (t.get(all).unwrap(), t.get(web).unwrap());
        assert_eq!(web.pps(Vector::SynFlood), 1_000);
        assert_eq!(web.pps(Vector::UdpFlood), 5_000);
        assert_eq!(all.pps(Vector::SynFlood), DEFAULT_PPS);
        assert_eq!(all.pps(Vector::UdpFlood), DEFAULT_PPS);
        assert_eq!(all.bps(Vector::UdpFlood), DEFAULT_MBPS * 1_000_000);
    }

    #[test]
    fn no_groups_means_a_default_group_over_the_protected_networks() {
        let t = GroupTable::new(&VolumetricConfig::default(), &NetSet::private_defaults());
        for ip in ["10.0.0.1", "172.16.0.1", "192.168.1.1", "fd12::1"] {
            assert_eq!(t.lookup(ip.parse().unwrap()), Some(0), "{ip}");
        }
        assert_eq!(t.lookup("8.8.8.8".parse().unwrap()), None);
        assert_eq!(t.get(0).unwrap().name, "default");
    }

    #[test]
    fn the_first_octet_filter_never_turns_away_an_address_a_network_covers() {
        // Networks shorter than /8 span several first octets; a /32 one.
        let cfg = VolumetricConfig {
            groups: vec![
                group("wide", &["64.0.0.0/3"], None),
                group("odd", &["200.1.2.3/32", "11.128.0.0/9"], None),
            ],
            ..VolumetricConfig::default()
        };
        let t = GroupTable::new(&cfg, &NetSet::private_defaults());
        let nets: Vec<(IpNet, u16)> = ["64.0.0.0/3", "200.1.2.3/32", "11.128.0.0/9"]
            .iter()
            .zip([0u16, 1, 1])
            .map(|(n, g)| (n.parse().unwrap(), g))
            .collect();
        let mut x: u32 = 0x1234_5678;
        for i in 0..200_000u32 {
            // Every first octet, the rest pseudo-random.
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let a = std::net::Ipv4Addr::from(((i % 256) << 24) | (x & 0x00ff_ffff));
            let ip = IpAddr::V4(a);
            let want = nets.iter().find(|(n, _)| n.contains(&ip)).map(|t| t.1);
            assert_eq!(t.lookup(ip), want, "{ip}");
            assert_eq!(t.lookup_len(ip).map(|p| p.0), want, "{ip}");
        }
        for ip in ["200.1.2.3", "95.255.255.255", "64.0.0.0", "11.128.0.1"] {
            assert!(t.lookup(ip.parse().unwrap()).is_some(), "{ip}");
        }
        for ip in ["200.1.2.4", "96.0.0.0", "63.255.255.255", "11.127.255.255"] {
            assert_eq!(t.lookup(ip.parse().unwrap()), None, "{ip}");
        }
    }
}
