//! `cargo xtask demo`'s tests (moved out of demo.rs as they were).

use super::*;

fn args(s: &str) -> Vec<String> {
    s.split_whitespace().map(str::to_owned).collect()
}

fn log(lines: &[&str]) -> Vec<String> {
    lines.iter().map(|l| l.to_string()).collect()
}

const GOOD: &str = "INFO  SUMMARY PASS reads=10 snapshots=5 isr_reads=2 writes=3 batches=1 \
                    cas_retries=0 violations=0 reader_cs=0 writer_cs=0 writes_per_s=1 \
                    publishes=5 \
                    read_cycles_median=180 read_cycles_worst=400 completed=1";

#[test]
fn options() {
    assert_eq!(
        parse(&[]),
        Ok(Options {
            board: &RP2040,
            build_only: false,
            elf: None,
            app: App::Demo,
        })
    );
    assert_eq!(
        parse(&args("--board mps2-an521")).map(|o| o.board),
        Ok(&AN521)
    );
    assert_eq!(
        parse(&args("--board rp2040 --build-only")),
        Ok(Options {
            board: &RP2040,
            build_only: true,
            elf: None,
            app: App::Demo,
        })
    );
    assert_eq!(
        parse(&args("--elf target/x/demo")).map(|o| o.elf),
        Ok(Some(PathBuf::from("target/x/demo")))
    );
    assert!(parse(&args("--elf")).is_err());
    assert!(parse(&args("--elf x --build-only")).is_err());
    assert_eq!(
        parse(&args("--app embassy")).map(|o| o.app),
        Ok(App::Embassy)
    );
    assert_eq!(
        parse(&args("--elf a/b/embassy")).map(|o| o.app),
        Ok(App::Embassy)
    );
    assert!(parse(&args("--app embassy --board an521")).is_err());
    assert!(parse(&args("--app embassy --board rp2350")).is_err());
    assert!(parse(&args("--app blinky")).is_err());
    assert_eq!(parse(&args("--board=pico")).map(|o| o.board), Ok(&RP2040));
    assert!(parse(&args("--board")).is_err());
    assert_eq!(parse(&args("--board pico2")).map(|o| o.board), Ok(&RP2350));
    assert!(parse(&args("--board microbit")).is_err());
    assert!(parse(&args("--frobnicate")).is_err());
}

#[test]
fn boot2_crc_is_crc32_mpeg2() {
    // The check value of CRC-32/MPEG-2.
    assert_eq!(boot2_crc(b"123456789"), 0x0376_E6E7);
}

#[test]
fn a_clean_summary_passes() {
    let summary = Summary::from_log(&log(&["INFO  t=500ms ...", GOOD]), &RP2040);
    assert!(summary.passed(), "{:?}", summary.problems);
    assert_eq!(
        summary.line(),
        "PASS reads=10 snapshots=5 isr_reads=2 writes=3 batches=1 cas_retries=0 \
         violations=0 reader_cs=0 writer_cs=0 writes_per_s=1 publishes=5 \
         read_cycles_median=180 read_cycles_worst=400 completed=1"
    );
}

#[test]
fn violations_critical_sections_or_no_summary_fail() {
    for bad in [
        GOOD.replace("violations=0", "violations=3"),
        GOOD.replace("reader_cs=0", "reader_cs=1"),
        GOOD.replace("writer_cs=0", "writer_cs=2"),
        GOOD.replace(" writer_cs=0", ""),
        GOOD.replace(" writes_per_s=1", ""),
        GOOD.replace("completed=1", "completed=0"),
        GOOD.replace("PASS", "FAIL"),
        GOOD.replace(" isr_reads=2", ""),
        GOOD.replace(" read_cycles_worst=400", ""),
    ] {
        let summary = Summary::from_log(&log(&[&bad]), &RP2040);
        assert!(!summary.passed(), "{bad}");
        assert!(summary.line().starts_with("FAIL "));
    }
    let nothing = Summary::from_log(&log(&["INFO  t=500ms"]), &RP2040);
    assert!(!nothing.passed());
    assert_eq!(nothing.line(), "FAIL completed=0");
}

#[test]
fn the_read_times_carry_the_boards_unit() {
    // QEMU's AN521 timer ticks in host time: its summary must not call them cycles.
    let qemu = GOOD.replace("read_cycles_", "read_timer_ticks_");
    assert!(Summary::from_log(&log(&[&qemu]), &AN521).passed());
    let misnamed = Summary::from_log(&log(&[GOOD]), &AN521);
    assert!(!misnamed.passed());
    assert!(misnamed
        .problems
        .contains(&"the summary has no numeric `read_timer_ticks_median`".to_owned()));
    assert!(!Summary::from_log(&log(&[&qemu]), &RP2040).passed());
}

#[test]
fn the_embassy_summary_has_its_own_keys() {
    let line = "INFO  SUMMARY PASS versions=10 last_version=10 wakeups=8 coalesced=2 \
                isr_reads=4 violations=0 reader_cs=0 wait_cs=40 cas_retries=0 \
                latency_samples=8 wake_cycles_median=400 wake_cycles_worst=900 completed=1";
    assert!(Summary::for_app(&log(&[line]), &RP2040, App::Embassy).passed());
    // The demo's keys are not the embassy firmware's.
    assert!(!Summary::for_app(&log(&[line]), &RP2040, App::Demo).passed());
    let missing = line.replace(" wake_cycles_worst=900", "");
    assert!(!Summary::for_app(&log(&[&missing]), &RP2040, App::Embassy).passed());
    let cs = line.replace("reader_cs=0", "reader_cs=2");
    assert!(!Summary::for_app(&log(&[&cs]), &RP2040, App::Embassy).passed());
    // Its writer writes through the map: no `writer_cs` to carry or check.
    let demo_only = line.replace("completed=1", "writer_cs=3 completed=1");
    assert!(Summary::for_app(&log(&[&demo_only]), &RP2040, App::Embassy).passed());
}
