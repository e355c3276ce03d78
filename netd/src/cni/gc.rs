//! CNI 1.1's STATUS and GC.
//!
//! STATUS answers whether an ADD could succeed now: the address store is usable and the pod
//! range has room. GC gets the attachments the runtime still uses
//! (`cni.dev/valid-attachments`) and frees everything else this network holds — addresses
//! leaked by a runtime that crashed between ADD and DEL, and their veths.

use std::collections::HashSet;

use super::add::host_veth_name;
use super::config::{Attachment, NetConf};
use super::del::remove_veth;
use super::error::{CniError, Code};
use super::ipam::Store;

pub fn status(conf: &NetConf) -> Result<(), CniError> {
    let store = Store::open(&conf.data_dir, &conf.name)
        .map_err(|e| CniError::new(Code::NotAvailable, e.msg.clone()).with_details(e.details))?;
    if !store.has_free(conf.subnet)? {
        return Err(CniError::new(
            Code::NotAvailable,
            format!("no free address left in {}", conf.subnet),
        ));
    }
    Ok(())
}

pub async fn gc(conf: &NetConf) -> Result<(), CniError> {
    let valid: HashSet<Attachment> = conf
        .valid_attachments
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    let store = Store::open(&conf.data_dir, &conf.name)?;
    for (ip, container_id, ifname) in store.allocations()? {
        let attachment = Attachment {
            container_id: container_id.clone(),
            ifname: ifname.clone(),
        };
        if valid.contains(&attachment) {
            continue;
        }
        remove_veth(&host_veth_name(&container_id, &ifname)).await?;
        store.release_ip(ip)?;
    }
    Ok(())
}
