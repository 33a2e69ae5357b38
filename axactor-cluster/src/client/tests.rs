use super::*;

fn ask_frame(held: &Held<(String, u32)>) -> OutFrame {
    held.with(|payload| {
        OutFrame::data(DataOut::Ask { request_id: 7, registry: "r", shard: 1, epoch: 2, key: "k", payload })
    })
    .expect("encodes")
}

#[test]
fn a_held_payload_frames_the_same_bytes_typed_or_after_a_local_delivery_took_it() {
    let value = ("hello".to_string(), 42u32);
    let held = Held::new(value.clone());
    let typed = ask_frame(&held);
    let raw = postcard::to_allocvec(&value).expect("encodes");
    let expected =
        OutFrame::data(DataOut::Ask { request_id: 7, registry: "r", shard: 1, epoch: 2, key: "k", payload: Raw(&raw) })
            .expect("encodes");
    assert_eq!(typed.envelope_bytes(), expected.envelope_bytes());
    // A local delivery takes the value; its encoding stays for later attempts.
    assert_eq!(held.take().expect("the value"), value);
    assert_eq!(ask_frame(&held).envelope_bytes(), expected.envelope_bytes());
    // Taken again (the first delivery refused it): decoded from that encoding.
    assert_eq!(held.take().expect("decoded"), value);
    // Handed back (not delivered here after all): typed again.
    held.put_back(value.clone());
    assert!(matches!(&*held.0.lock(), HeldState::Value(v) if *v == value));
    assert_eq!(ask_frame(&held).envelope_bytes(), expected.envelope_bytes());
}
