//! Checks of `sotw_ack_nack`, with week 4's protocol messages.

use week4_xds::protocol::{DiscoveryResponse, INVALID_ARGUMENT};

use super::week4::sotw_ack_nack::SotwSubscription;

const CDS: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";

fn response(version: &str, nonce: &str, clusters: &[&str]) -> DiscoveryResponse<String> {
    DiscoveryResponse {
        version_info: version.into(),
        resources: clusters.iter().map(|c| c.to_string()).collect(),
        type_url: CDS.into(),
        nonce: nonce.into(),
        ..DiscoveryResponse::default()
    }
}

/// Rejects a cluster named "bad".
fn validate(clusters: &[String]) -> Result<(), String> {
    match clusters.iter().find(|c| *c == "bad") {
        Some(c) => Err(format!("cluster {c:?} is invalid")),
        None => Ok(()),
    }
}

checks! {
    fn the_first_request_asks_from_scratch() {
        let s = SotwSubscription::new(CDS, vec!["a".into(), "b".into()]);
        let r = s.initial_request();
        assert_eq!(r.type_url, CDS);
        assert_eq!(r.resource_names, ["a", "b"]);
        assert_eq!((r.version_info.as_str(), r.response_nonce.as_str()), ("", ""));
        assert!(r.error_detail.is_none() && !r.is_nack());
        assert_eq!(s.version_info(), "");
    }

    fn acks_a_good_response_and_nacks_a_bad_one() {
        let mut s = SotwSubscription::new(CDS, vec![]);
        let ack = s.handle_response(&response("v1", "n1", &["a"]), validate);
        assert_eq!((ack.version_info.as_str(), ack.response_nonce.as_str()), ("v1", "n1"));
        assert!(!ack.is_nack());
        assert_eq!(s.version_info(), "v1");

        let nack = s.handle_response(&response("v2", "n2", &["a", "bad"]), validate);
        assert_eq!(nack.version_info, "v1", "a NACK carries the last good version");
        assert_eq!(nack.response_nonce, "n2", "and the rejected response's nonce");
        let err = nack.error_detail.expect("a NACK has an error_detail");
        assert_eq!(err.code, INVALID_ARGUMENT);
        assert!(err.message.contains("\"bad\" is invalid"), "{}", err.message);
        assert_eq!(s.version_info(), "v1", "the rejected version is not taken");

        let ack = s.handle_response(&response("v3", "n3", &["a", "b"]), validate);
        assert_eq!((ack.version_info.as_str(), ack.response_nonce.as_str()), ("v3", "n3"));
        assert!(ack.error_detail.is_none());
        assert_eq!(s.initial_request().version_info, "v3", "a new stream resumes from v3");
    }

    fn a_response_of_another_type_is_rejected_unseen() {
        let mut s = SotwSubscription::new(CDS, vec![]);
        let mut other = response("v1", "n1", &["a"]);
        other.type_url = "type.googleapis.com/envoy.config.listener.v3.Listener".into();
        let nack = s.handle_response(&other, |_: &[String]| panic!("validate must not be called"));
        assert!(nack.is_nack());
        assert_eq!(nack.response_nonce, "n1");
        assert_eq!(nack.type_url, CDS);
        assert_eq!(s.version_info(), "");
    }
}
