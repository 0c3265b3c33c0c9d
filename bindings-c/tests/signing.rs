//! `aq_claim_verify`: a C agent checks a claim's signature with the key it
//! pins, as every host can.

mod support;

use std::ptr::{null, null_mut};

use actionq::ClaimSigningKey;
use actionq_c::*;
use support::*;

#[test]
fn a_claim_verifies_with_the_pinned_key_only_as_signed() {
    let q = Queue::in_memory();
    create_server(&q, "web-1");
    create_action(&q, r#"{"server_id":"web-1","action_type":"clear_logs"}"#).unwrap();
    let mut out = null_mut();
    assert_eq!(
        unsafe { aq_action_claim_next(q.0, host(), c("web-1").as_ptr(), null(), &mut out) },
        aq_status::Ok
    );
    let mut claim = take_json(out);
    let key = ClaimSigningKey::generate().unwrap();
    let core_claim: actionq::Claim = serde_json::from_value(claim.clone()).unwrap();
    claim["signature"] = key.sign_claim(&core_claim).into();
    let pem = c(&key.public_key().to_pem());
    let verify = |claim: &serde_json::Value| unsafe {
        aq_claim_verify(pem.as_ptr(), c(&claim.to_string()).as_ptr())
    };
    assert_eq!(verify(&claim), aq_status::Ok);

    let mut edited = claim.clone();
    edited["argv"] = serde_json::json!(["sh", "-c", "id"]);
    assert_eq!(verify(&edited), aq_status::Unauthenticated);
    assert!(
        last_message().contains("signature refused"),
        "{}",
        last_message()
    );
    let mut unsigned = claim.clone();
    unsigned.as_object_mut().unwrap().remove("signature");
    assert_eq!(verify(&unsigned), aq_status::Unauthenticated);

    let other = c(&ClaimSigningKey::generate().unwrap().public_key().to_pem());
    let text = c(&claim.to_string());
    assert_eq!(
        unsafe { aq_claim_verify(other.as_ptr(), text.as_ptr()) },
        aq_status::Unauthenticated
    );
    assert_eq!(
        unsafe { aq_claim_verify(c("not a key").as_ptr(), text.as_ptr()) },
        aq_status::InvalidInput
    );
    assert_eq!(
        unsafe { aq_claim_verify(pem.as_ptr(), c("{").as_ptr()) },
        aq_status::InvalidInput
    );
    assert_eq!(
        unsafe { aq_claim_verify(null(), text.as_ptr()) },
        aq_status::NullArgument
    );
    assert_eq!(
        unsafe { aq_claim_verify(pem.as_ptr(), null()) },
        aq_status::NullArgument
    );
}
