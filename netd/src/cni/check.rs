//! CHECK: the attachment is still as ADD left it — the address reserved, the host end on the
//! bridge, the pod's interface up with the address of `prevResult`.

use std::net::{IpAddr, Ipv4Addr};

use futures::TryStreamExt;
use rtnetlink::packet_route::address::AddressAttribute;

use super::add::host_veth_name;
use super::config::{Env, NetConf};
use super::error::{netlink, CniError, Code};
use super::ipam::Store;
use crate::netlink as nl;

pub async fn check(env: &Env, conf: &NetConf) -> Result<(), CniError> {
    let failed = |msg: String| CniError::new(Code::CheckFailed, msg);
    let prev = conf.prev_result.as_ref().ok_or_else(|| {
        CniError::new(
            Code::InvalidConfig,
            "CHECK needs \"prevResult\" in the configuration",
        )
    })?;
    let expected: Ipv4Addr = prev
        .pointer("/ips/0/address")
        .and_then(|a| a.as_str())
        .and_then(|a| a.split('/').next())
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| CniError::new(Code::InvalidConfig, "\"prevResult\" has no IPv4 address"))?;
    let store = Store::open(&conf.data_dir, &conf.name)?;
    match store.find(&env.container_id, &env.ifname)? {
        Some(ip) if ip == expected => {}
        Some(ip) => return Err(failed(format!("the attachment holds {ip}, not {expected}"))),
        None => {
            return Err(failed(format!(
                "no address is reserved for {}",
                env.container_id
            )))
        }
    }
    drop(store);
    let handle = nl::connect().map_err(|e| netlink("opening a netlink socket", e))?;
    let host_name = host_veth_name(&env.container_id, &env.ifname);
    let host = nl::link(&handle, &host_name)
        .await
        .map_err(|e| netlink("looking up links", e))?
        .ok_or_else(|| failed(format!("host veth {host_name} is missing")))?;
    let bridge = nl::link(&handle, &conf.bridge)
        .await
        .map_err(|e| netlink("looking up links", e))?
        .ok_or_else(|| failed(format!("bridge {} is missing", conf.bridge)))?;
    if nl::controller_of(&host) != Some(bridge.header.index) {
        return Err(failed(format!(
            "{host_name} is not on bridge {}",
            conf.bridge
        )));
    }
    let ifname = env.ifname.clone();
    let netns = env.netns.clone().expect("checked by Env");
    nl::in_netns(&netns, move |h| async move {
        let link = nl::link(&h, &ifname)
            .await?
            .ok_or_else(|| anyhow::anyhow!("interface {ifname} is missing in the pod"))?;
        let mut addresses = h
            .address()
            .get()
            .set_link_index_filter(link.header.index)
            .execute();
        while let Some(a) = addresses.try_next().await? {
            let has = a.attributes.iter().any(
                |attr| matches!(attr, AddressAttribute::Address(IpAddr::V4(ip)) if *ip == expected),
            );
            if has {
                return Ok(());
            }
        }
        anyhow::bail!("interface {ifname} does not hold {expected}")
    })
    .map_err(|e| failed(format!("{e:#}")))
}
