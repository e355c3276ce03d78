//! DEL: the address back to the pool and the veth gone. Idempotent, and it works when the
//! pod's namespace no longer exists (the host end is found by name; deleting it removes its
//! peer wherever that is).

use super::add::host_veth_name;
use super::config::{Env, NetConf};
use super::error::{netlink, CniError};
use super::ipam::Store;
use crate::netlink as nl;

pub async fn del(env: &Env, conf: &NetConf) -> Result<(), CniError> {
    let store = Store::open(&conf.data_dir, &conf.name)?;
    remove_veth(&host_veth_name(&env.container_id, &env.ifname)).await?;
    store.release(&env.container_id, &env.ifname)?;
    Ok(())
}

pub async fn remove_veth(name: &str) -> Result<(), CniError> {
    let handle = nl::connect().map_err(|e| netlink("opening a netlink socket", e))?;
    if let Some(link) = nl::link(&handle, name)
        .await
        .map_err(|e| netlink("looking up links", e))?
    {
        match handle.link().del(link.header.index).execute().await {
            Ok(()) => {}
            Err(e) if nl::is_not_found(&e) => {}
            Err(e) => return Err(netlink("deleting the veth", e)),
        }
    }
    Ok(())
}
