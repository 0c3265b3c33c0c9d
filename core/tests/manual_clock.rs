//! ManualClock::advance_seconds: the unit every host passes durations in.

use actionq::{Clock, ErrorKind, ManualClock};

#[test]
fn advance_seconds_moves_to_the_microsecond_and_refuses_bad_values() {
    let start = "2026-01-01T00:00:00Z".parse().unwrap();
    let clock = ManualClock::new(start);
    clock.advance_seconds(1.5).unwrap();
    clock.advance_seconds(0.000_001).unwrap();
    assert_eq!(clock.now().to_rfc3339(), "2026-01-01T00:00:01.500001+00:00");
    clock.advance_seconds(-1.500_001).unwrap();
    assert_eq!(clock.now(), start);
    for bad in [f64::NAN, f64::INFINITY, -f64::INFINITY, 1e300, 1e13] {
        let err = clock.advance_seconds(bad).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{bad}: {err}");
        assert_eq!(clock.now(), start, "{bad} moved the clock");
    }
}
