use std::path::Path;

use rust_hdf5::DatatypeMessage;

use super::*;

#[test]
fn round_trip_every_written_type() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.h5");
    let mut w = AtomicH5::create(&path).unwrap();
    w.write("g/f", Data::F32(&[1.5, f32::NAN, 3.0, 4.0], vec![2, 2]))
        .unwrap();
    w.write("g/i", Data::I32(&[1, -2], vec![2])).unwrap();
    w.write("g/b", Data::Bool(&[true, false, true], vec![3]))
        .unwrap();
    w.write("g/h/u", Data::U64(&[7, 9], vec![2])).unwrap();
    w.write("top", Data::VlenI32(&[vec![0, 2], vec![], vec![5]]))
        .unwrap();
    w.write("s", Data::Strings(&["a".into(), "bé".into()]))
        .unwrap();
    w.write("one", Data::StringScalar("hello")).unwrap();
    w.write("none", Data::StringScalar("")).unwrap();
    w.write_uncompressed("big", Data::F64(&[0.5; 6], vec![3, 2]))
        .unwrap();
    w.attr_str("g", "kind", "group").unwrap();
    w.attr_f64("g/f", "rate", 2.5).unwrap();
    w.attr_i32("g/f", "n", 3).unwrap();
    w.attr_str("/", "version", "1").unwrap();
    w.attr_ref("g/i", "target", "g/f").unwrap();
    assert!(!path.exists(), "nothing at the destination before commit");
    w.commit().unwrap();

    let r = H5File::open(&path).unwrap();
    let f = r.read_f64("g/f").unwrap();
    assert_eq!(f.shape(), &[2, 2]);
    assert_eq!(f[[0, 0]], 1.5);
    assert!(f[[0, 1]].is_nan());
    assert_eq!(r.read_i64("g/i").unwrap(), vec![1, -2]);
    assert_eq!(r.read_bool("g/b").unwrap(), vec![true, false, true]);
    assert_eq!(r.read_i64("g/h/u").unwrap(), vec![7, 9]);
    assert_eq!(
        r.read_vlen_i64("top").unwrap(),
        vec![vec![0, 2], vec![], vec![5]]
    );
    assert_eq!(r.read_strings("s").unwrap(), vec!["a", "bé"]);
    assert_eq!(r.read_strings("one").unwrap(), vec!["hello"]);
    assert_eq!(r.read_strings("none").unwrap(), vec![""]);
    assert_eq!(r.read_f64("big").unwrap().shape(), &[3, 2]);
    assert_eq!(r.attr_string("g", "kind").as_deref(), Some("group"));
    assert_eq!(r.attr_f64("g/f", "rate"), Some(2.5));
    assert_eq!(r.attr_f64("g/f", "n"), Some(3.0));
    assert_eq!(r.attr_f64("g/f", "absent"), None);
    assert!(r.has("g/f") && !r.has("g/zz") && !r.has("nope/zz"));
    assert!(r.is_group("g/h") && !r.is_group("g/f"));
    assert_eq!(r.members("g").unwrap(), vec!["b", "f", "h", "i"]);
}

#[test]
fn reruns_are_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str| {
        let path = dir.path().join(name);
        let mut w = AtomicH5::create(&path).unwrap();
        w.write("a/x", Data::F32(&[1.0; 1000], vec![10, 100]))
            .unwrap();
        w.write("a/s", Data::Strings(&["q".into()])).unwrap();
        w.attr_str("a", "d", "e").unwrap();
        w.commit().unwrap();
        std::fs::read(path).unwrap()
    };
    assert_eq!(write("1.h5"), write("2.h5"));
}

#[test]
fn reads_half_and_double_floats_alike() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.h5");
    let f = rust_hdf5::H5File::create(&path).unwrap();
    let halves: Vec<u16> = [0.0f32, 1.0, 3.0, f32::NAN]
        .iter()
        .map(|&v| half::f16::from_f32(v).to_bits())
        .collect();
    f.new_dataset::<u16>()
        .datatype(DatatypeMessage::f16_type())
        .shape([4])
        .create("spikes")
        .and_then(|d| d.write_raw(&halves))
        .unwrap();
    f.new_dataset::<f64>()
        .shape([2])
        .create("behavior")
        .and_then(|d| d.write_raw(&[0.25f64, -1.5]))
        .unwrap();
    f.close().unwrap();
    let r = H5File::open(&path).unwrap();
    let spikes = r.read_f64("spikes").unwrap();
    assert_eq!(&spikes.as_slice().unwrap()[..3], &[0.0, 1.0, 3.0]);
    assert!(spikes[[3]].is_nan());
    assert_eq!(
        r.read_f32("behavior").unwrap().as_slice().unwrap(),
        &[0.25, -1.5]
    );
    assert!(r.read_i64("behavior").is_err(), "floats are not integers");
}

#[test]
fn dropped_writer_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.h5");
    {
        let mut w = AtomicH5::create(&path).unwrap();
        w.write("a", Data::I32(&[1], vec![1])).unwrap();
    }
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn missing_file_and_key_name_the_path() {
    let err = H5File::open(Path::new("/no/such.h5")).err().unwrap();
    assert!(err.to_string().contains("/no/such.h5"));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.h5");
    let mut w = AtomicH5::create(&path).unwrap();
    w.write("a", Data::I32(&[1], vec![1])).unwrap();
    assert!(w.write("b", Data::I32(&[1, 2], vec![3])).is_err());
    w.commit().unwrap();
    let err = H5File::open(&path).unwrap().read_f64("b").unwrap_err();
    assert!(err.to_string().contains("missing `b`"));
}

#[test]
fn a_file_that_is_not_hdf5_is_an_open_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.h5");
    std::fs::write(&path, b"not an hdf5 file at all").unwrap();
    let err = H5File::open(&path).err().unwrap();
    assert!(
        err.to_string().contains("not a readable HDF5 file"),
        "{err}"
    );
}

#[test]
fn chunked_datasets_read_in_slabs_equal_what_was_written() {
    // Many chunk rows along the first axis (and an edge chunk), so on two or more cores the
    // slab reader (one file handle per thread) reads them; on one core the whole-dataset read.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("slabs.h5");
    let shape = vec![1001, 35, 40];
    let f32s: Vec<f32> = (0..shape.iter().product::<usize>())
        .map(|i| (i % 9973) as f32 * 0.25)
        .collect();
    let f64s: Vec<f64> = (0..300_007).map(|i| i as f64 * 1e-3).collect();
    let mut w = AtomicH5::create(&path).unwrap();
    w.write("g/rates", Data::F32(&f32s, shape.clone())).unwrap();
    w.write("times", Data::F64(&f64s, vec![f64s.len()]))
        .unwrap();
    w.commit().unwrap();

    let r = H5File::open(&path).unwrap();
    let got = r.read_f32("g/rates").unwrap();
    assert_eq!(got.shape(), &shape[..]);
    assert!(got.iter().zip(&f32s).all(|(a, b)| a == b));
    let got = r.read_f64("times").unwrap();
    assert!(got.iter().zip(&f64s).all(|(a, b)| a == b));
    assert_eq!(got.len(), f64s.len());
}
