//! Dynamic host ports: in bridge mode a `hostPort` of 0 (or none) gets a port from the ECS
//! agent's default range, chosen by hostalb (as the agent chooses it) so that DescribeTasks
//! can name it before the container starts.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, TcpListener, UdpSocket};

/// The ECS agent's default `ECS_DYNAMIC_HOST_PORT_RANGE`: 49153-65535.
pub const DYNAMIC_RANGE: (u16, u16) = (49153, 65535);

/// A port of the range, free on the host now (it binds on all addresses) and not in
/// `taken` (ports other tasks hold), starting at a random place so that concurrent tasks
/// rarely meet; `None` when the whole range is in use.
pub fn pick(protocol: &str, taken: &BTreeSet<u16>, seed: u32) -> Option<u16> {
    let (low, high) = DYNAMIC_RANGE;
    let span = u32::from(high - low) + 1;
    (0..span)
        .map(|i| low + u16::try_from((seed.wrapping_add(i)) % span).unwrap_or(0))
        .find(|p| !taken.contains(p) && free(protocol, *p))
}

fn free(protocol: &str, port: u16) -> bool {
    if protocol == "udp" {
        UdpSocket::bind((Ipv4Addr::UNSPECIFIED, port)).is_ok()
    } else {
        TcpListener::bind((Ipv4Addr::UNSPECIFIED, port)).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_free_ports_of_the_range_and_skips_taken_and_bound_ones() {
        let first = pick("tcp", &BTreeSet::new(), 7).unwrap();
        assert!((DYNAMIC_RANGE.0..=DYNAMIC_RANGE.1).contains(&first));
        let taken = BTreeSet::from([first]);
        let second = pick("tcp", &taken, 7).unwrap();
        assert_ne!(first, second);
        let held = TcpListener::bind((Ipv4Addr::UNSPECIFIED, second)).unwrap();
        let third = pick("tcp", &taken, 7).unwrap();
        assert!(third != second && third != first);
        drop(held);
    }
}
