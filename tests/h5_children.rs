//! HDF5 files written in-process stay usable while child processes run: a process spawned while a
//! file is open for writing must not inherit its descriptor (and with it the file's lock), or the
//! next open of that file fails until the child exits. Tests that write h5 files and spawn the
//! binary therefore need no mutex between them.

mod common;

use std::process::Command;

use langevin::h5::{AtomicH5, Data, H5File};

#[test]
fn a_file_written_while_a_child_was_spawned_opens_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.h5");
    let mut file = AtomicH5::create(&path).unwrap();
    file.write_uncompressed("a", Data::F64(&[1.0, 2.0, 3.0], vec![3]))
        .unwrap();
    // A child that outlives the writer, spawned while the file is open and locked.
    let mut child = Command::new("sleep").arg("5").spawn().unwrap();
    file.commit().unwrap();
    let read = H5File::open(&path).unwrap();
    assert_eq!(
        read.read_f64("a").unwrap().into_raw_vec_and_offset().0,
        [1.0, 2.0, 3.0]
    );
    drop(read);
    // Written again in place (a rerun), and read by the binary, while the child still runs.
    let mut again = AtomicH5::create(&path).unwrap();
    again
        .write_uncompressed("a", Data::F64(&[4.0], vec![1]))
        .unwrap();
    again.commit().unwrap();
    common::langevin()
        .args(["evaluate", "--target"])
        .arg(&path)
        .arg("--submission")
        .arg(&path)
        .assert()
        .failure()
        .stderr(predicates::str::contains("no dataset group"));
    assert!(
        child.try_wait().unwrap().is_none(),
        "the child must still run"
    );
    child.kill().unwrap();
    let _ = child.wait();
}
