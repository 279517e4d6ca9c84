//! Checks of `delta`, with week 4's protocol messages.

use std::collections::BTreeMap;

use week4_xds::protocol::{DeltaDiscoveryResponse, DeltaResource, INVALID_ARGUMENT};

use super::week4::delta::DeltaSubscription;

const EDS: &str = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment";

fn response(nonce: &str, added: &[(&str, &str)], removed: &[&str]) -> DeltaDiscoveryResponse<()> {
    DeltaDiscoveryResponse {
        resources: added
            .iter()
            .map(|(name, version)| DeltaResource {
                name: name.to_string(),
                version: version.to_string(),
                resource: Some(()),
                ..DeltaResource::default()
            })
            .collect(),
        removed_resources: removed.iter().map(|r| r.to_string()).collect(),
        type_url: EDS.into(),
        nonce: nonce.into(),
        ..DeltaDiscoveryResponse::default()
    }
}

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn accept(_: &DeltaDiscoveryResponse<()>) -> Result<(), String> {
    Ok(())
}

checks! {
    fn subscribe_and_unsubscribe_send_only_changes() {
        let mut s = DeltaSubscription::new(EDS);
        let r = s.subscribe(&["web", "api", "web"]);
        assert_eq!(r.type_url, EDS);
        assert_eq!(r.resource_names_subscribe, ["api", "web"]);
        assert!(r.resource_names_unsubscribe.is_empty());
        let r = s.subscribe(&["api", "db"]);
        assert_eq!(r.resource_names_subscribe, ["db"], "api is already subscribed");
        let r = s.unsubscribe(&["web", "nothing"]);
        assert_eq!(r.resource_names_unsubscribe, ["web"]);
        assert!(r.resource_names_subscribe.is_empty());
        assert_eq!(r.type_url, EDS);
    }

    fn responses_add_update_and_remove_versions() {
        let mut s = DeltaSubscription::new(EDS);
        s.subscribe(&["api", "web", "db"]);
        let ack = s.handle_response(&response("n1", &[("api", "1"), ("web", "1")], &[]), accept);
        assert_eq!(ack.response_nonce, "n1");
        assert!(!ack.is_nack());
        assert_eq!(ack.type_url, EDS);
        assert_eq!(*s.versions(), map(&[("api", "1"), ("web", "1")]));
        s.handle_response(&response("n2", &[("api", "2")], &["web"]), accept);
        assert_eq!(*s.versions(), map(&[("api", "2")]));
        let nack = s.handle_response(&response("n3", &[("db", "1")], &["api"]), |_| Err("bad endpoint".into()));
        assert_eq!(nack.response_nonce, "n3");
        let err = nack.error_detail.expect("a NACK");
        assert_eq!((err.code, err.message.as_str()), (INVALID_ARGUMENT, "bad endpoint"));
        assert_eq!(*s.versions(), map(&[("api", "2")]), "a NACK changes nothing");
        s.unsubscribe(&["api"]);
        assert!(s.versions().is_empty(), "unsubscribing forgets the version");
    }

    fn a_new_stream_says_what_it_has() {
        let mut s = DeltaSubscription::new(EDS);
        s.subscribe(&["web", "api"]);
        s.handle_response(&response("n1", &[("api", "7")], &[]), accept);
        let r = s.reconnect_request();
        assert_eq!(r.type_url, EDS);
        assert_eq!(r.resource_names_subscribe, ["api", "web"]);
        assert_eq!(r.initial_resource_versions, map(&[("api", "7")]));
        assert_eq!(r.response_nonce, "");
        assert!(r.error_detail.is_none());
    }
}
