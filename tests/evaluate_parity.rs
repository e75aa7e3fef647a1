//! The evaluator against nlb_tools: every metric of every fixture split and submission must match
//! the reference evaluator's output to 1e-6, and malformed submissions must fail with messages
//! that name the file, group, key and shapes.
//!
//! `tests/fixtures/evaluate/` holds 7 of the 14 val splits of the synthetic NLB fixture set (every
//! dataset family, both bin widths), each with its `eval_target.h5` and three submissions
//! (smoothing baseline, ground-truth rates, random rates), and the matching part of the reference
//! evaluator's `reference_metrics.json`.

use std::fmt;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};

use langevin::evaluate::{evaluate_files, Report};
use langevin::h5::{AtomicH5, Data, H5File};
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};

const TOL: f64 = 1e-6;
const SUBMISSIONS: [&str; 3] = ["smoothing", "truth", "random"];

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/evaluate")
}

/// A JSON object read with its key order kept (serde_json's own map would sort the keys).
#[derive(Debug, Clone)]
struct Ordered<V>(Vec<(String, V)>);

impl<'de, V: Deserialize<'de>> Deserialize<'de> for Ordered<V> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V_<V>(PhantomData<V>);
        impl<'de, V: Deserialize<'de>> Visitor<'de> for V_<V> {
            type Value = Ordered<V>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some(entry) = map.next_entry()? {
                    out.push(entry);
                }
                Ok(Ordered(out))
            }
        }
        d.deserialize_map(V_(PhantomData))
    }
}

/// The reference evaluator's returned list: `[{split: {metric: value or null}}]`.
type RefList = Vec<Ordered<Ordered<Option<f64>>>>;

/// One split of a reference list, unwrapped: `(split, [(metric, value or null)])`.
type RefSplit = (String, Vec<(String, Option<f64>)>);

/// `{split folder: {submission: returned list}}`.
fn reference(path: &Path) -> Ordered<Ordered<RefList>> {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Compares our report with the reference list: same splits and keys in the same order, values
/// within [`TOL`], NaN where the reference has null.
fn assert_matches(what: &str, ours: &Report, theirs: &RefList) {
    let ours: Vec<(&str, &[(String, f64)])> = ours
        .splits
        .iter()
        .map(|(n, e)| (n.as_str(), e.as_slice()))
        .collect();
    let names: Vec<&str> = ours.iter().map(|(n, _)| *n).collect();
    let ref_names: Vec<&str> = theirs.iter().map(|d| d.0[0].0.as_str()).collect();
    assert_eq!(names, ref_names, "{what}: split names");
    for ((name, entries), t) in ours.iter().zip(theirs) {
        assert_eq!(t.0.len(), 1, "{what}: one key per list element");
        let t = &t.0[0].1 .0;
        let keys: Vec<&str> = entries.iter().map(|(k, _)| k.as_str()).collect();
        let ref_keys: Vec<&str> = t.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ref_keys, "{what}: metric keys of {name}");
        for ((k, v), (_, r)) in entries.iter().zip(t) {
            match r {
                None => assert!(
                    v.is_nan(),
                    "{what}: {name}/{k}: {v} where the reference is NaN"
                ),
                Some(r) => assert!(
                    (v - r).abs() <= TOL,
                    "{what}: {name}/{k}: {v} vs reference {r} (diff {:.3e})",
                    (v - r).abs()
                ),
            }
        }
    }
}

/// Checks every split folder under `prep` that the reference lists; returns how many were checked.
fn check_splits(prep: &Path, reference_json: &Path) -> usize {
    let mut checked = 0;
    for (split, by_submission) in reference(reference_json).0 {
        let dir = prep.join(&split);
        for (sub, expected) in &by_submission.0 {
            let target = dir.join("eval_target.h5");
            let submission = dir.join(format!("submission_{sub}.h5"));
            let results = evaluate_files(&target, &submission)
                .unwrap_or_else(|e| panic!("{split}/{sub}: {e}"));
            let report = Report::from_results(&results);
            assert_matches(&format!("{split}/{sub}"), &report, expected);
            checked += 1;
        }
    }
    checked
}

#[test]
fn every_fixture_split_matches_the_reference() {
    let dir = fixtures();
    let n = check_splits(&dir, &dir.join("reference_metrics.json"));
    assert_eq!(n, 7 * SUBMISSIONS.len());
}

/// The full fixture set (all 14 val splits); run with
/// `LANGEVIN_NLB_FIXTURES=/path/to/fixtures/nlb cargo test --test evaluate_parity -- --ignored`.
#[test]
#[ignore = "needs LANGEVIN_NLB_FIXTURES pointing at the full NLB fixture folder"]
fn all_val_splits_match_the_reference() {
    let root =
        PathBuf::from(std::env::var("LANGEVIN_NLB_FIXTURES").expect("set LANGEVIN_NLB_FIXTURES"));
    let n = check_splits(&root.join("prep"), &root.join("reference_metrics.json"));
    assert_eq!(n, 14 * SUBMISSIONS.len());
}

/// Copies every dataset of `group` from `src` into `dst`, keeping the on-disk kinds.
fn copy_group(src: &H5File, dst: &mut AtomicH5, group: &str, skip: &[&str]) {
    for key in src.members(group).unwrap() {
        if skip.contains(&key.as_str()) {
            continue;
        }
        let name = format!("{group}/{key}");
        let shape = src.shape(&name).unwrap();
        if key.ends_with("_cond_idx") {
            let lists: Vec<Vec<i32>> = src
                .read_vlen_i64(&name)
                .unwrap()
                .into_iter()
                .map(|l| l.into_iter().map(|i| i as i32).collect())
                .collect();
            dst.write(&name, Data::VlenI32(&lists)).unwrap();
        } else if key.ends_with("_decode_mask") {
            dst.write(&name, Data::Bool(&src.read_bool(&name).unwrap(), shape))
                .unwrap();
        } else if key.ends_with("_jitter") {
            let v: Vec<i32> = src
                .read_i64(&name)
                .unwrap()
                .into_iter()
                .map(|i| i as i32)
                .collect();
            dst.write(&name, Data::I32(&v, shape)).unwrap();
        } else {
            let v: Vec<f32> = src
                .read_f64(&name)
                .unwrap()
                .iter()
                .map(|&x| x as f32)
                .collect();
            dst.write(&name, Data::F32(&v, shape)).unwrap();
        }
    }
}

fn only_group(file: &H5File) -> String {
    let groups = file.members("/").unwrap();
    assert_eq!(
        groups.len(),
        1,
        "{}: one group per fixture file",
        file.path().display()
    );
    groups[0].clone()
}

/// All fixture splits in one target and one submission file, as a leaderboard submission holds
/// them: groups are visited in the reference order and the scaling datasets merged at the end.
#[test]
fn one_file_with_every_group_reproduces_the_merged_report() {
    let dir = fixtures();
    let refs = reference(&dir.join("reference_metrics.json"));
    let tmp = tempfile::tempdir().unwrap();
    let (target, submission) = (tmp.path().join("target.h5"), tmp.path().join("sub.h5"));
    let mut t = AtomicH5::create(&target).unwrap();
    let mut s = AtomicH5::create(&submission).unwrap();
    let mut expected: Vec<RefSplit> = Vec::new();
    for (split, by_sub) in &refs.0 {
        let tf = H5File::open(&dir.join(split).join("eval_target.h5")).unwrap();
        let sf = H5File::open(&dir.join(split).join("submission_truth.h5")).unwrap();
        let group = only_group(&tf);
        copy_group(&tf, &mut t, &group, &[]);
        copy_group(&sf, &mut s, &group, &[]);
        let list = &by_sub.0.iter().find(|(k, _)| k == "truth").unwrap().1;
        for d in list {
            expected.push((d.0[0].0.clone(), d.0[0].1 .0.clone()));
        }
    }
    t.commit().unwrap();
    s.commit().unwrap();

    // The reference order: non-scaling splits in visiting order, then the merged scaling splits.
    let order = |name: &str| -> (usize, usize) {
        let datasets = [
            "mc_maze",
            "mc_rtt",
            "area2_bump",
            "dmfc_rsg",
            "mc_maze_scaling",
        ];
        let (base, bin) = match name.strip_suffix("_20_split") {
            Some(b) => (b, 1),
            None => (name.strip_suffix("_split").unwrap(), 0),
        };
        (datasets.iter().position(|d| *d == base).unwrap(), bin)
    };
    let mut merged: Vec<RefSplit> = Vec::new();
    for (name, entries) in expected {
        match merged.iter_mut().find(|(n, _)| *n == name) {
            Some((_, e)) => e.extend(entries),
            None => merged.push((name, entries)),
        }
    }
    merged.sort_by_key(|(n, _)| order(n));
    // Within a merged scaling split the reference visits large, medium, small.
    for (_, entries) in merged.iter_mut() {
        entries.sort_by_key(|(k, _)| match &k[..k.find(' ').unwrap_or(0)] {
            "[500]" => 0,
            "[250]" => 1,
            "[100]" => 2,
            _ => 0,
        });
    }
    let merged: RefList = merged
        .into_iter()
        .map(|(n, e)| Ordered(vec![(n, Ordered(e))]))
        .collect();

    let results = evaluate_files(&target, &submission).unwrap();
    assert_eq!(results.len(), 7);
    assert_matches("merged file", &Report::from_results(&results), &merged);
}

/// Writes a copy of `split`'s target and truth submission with `edit` applied to the submission's
/// group (which gets every key except `skip`), and evaluates the pair.
fn evaluate_edited(
    split: &str,
    skip: &[&str],
    edit: impl FnOnce(&str, &mut AtomicH5),
) -> (Result<Report, String>, PathBuf, tempfile::TempDir) {
    let dir = fixtures().join(split);
    let tmp = tempfile::tempdir().unwrap();
    let submission = tmp.path().join("edited_submission.h5");
    let sf = H5File::open(&dir.join("submission_truth.h5")).unwrap();
    let group = only_group(&sf);
    let mut s = AtomicH5::create(&submission).unwrap();
    copy_group(&sf, &mut s, &group, skip);
    edit(&group, &mut s);
    s.commit().unwrap();
    let result = evaluate_files(&dir.join("eval_target.h5"), &submission)
        .map(|r| Report::from_results(&r))
        .map_err(|e| e.to_string());
    (result, submission, tmp)
}

#[test]
fn a_heldout_shape_mismatch_names_file_group_key_and_shapes() {
    let sf = H5File::open(&fixtures().join("mc_maze-05ms-val/submission_truth.h5")).unwrap();
    let rates = sf.read_f64("mc_maze/eval_rates_heldout").unwrap();
    let short: Vec<f32> = rates
        .slice(ndarray::s![.., .., ..7])
        .iter()
        .map(|&x| x as f32)
        .collect();
    let (result, path, _tmp) =
        evaluate_edited("mc_maze-05ms-val", &["eval_rates_heldout"], |g, s| {
            s.write(
                &format!("{g}/eval_rates_heldout"),
                Data::F32(&short, vec![8, 140, 7]),
            )
            .unwrap()
        });
    let msg = result.unwrap_err();
    for needle in [
        path.to_str().unwrap(),
        "eval_target.h5",
        "`mc_maze`",
        "submission `eval_rates_heldout`",
        "[8, 140, 7]",
        "target `eval_spikes_heldout`",
        "[8, 140, 8]",
    ] {
        assert!(msg.contains(needle), "`{needle}` not in: {msg}");
    }
}

#[test]
fn negative_rates_are_rejected_naming_the_key() {
    let sf = H5File::open(&fixtures().join("mc_rtt-20ms-val/submission_truth.h5")).unwrap();
    let mut rates = sf.read_f64("mc_rtt_20/eval_rates_heldout").unwrap();
    rates[[3, 4, 5]] = -0.5;
    let shape = rates.shape().to_vec();
    let v: Vec<f32> = rates.iter().map(|&x| x as f32).collect();
    let (result, _, _tmp) = evaluate_edited("mc_rtt-20ms-val", &["eval_rates_heldout"], |g, s| {
        s.write(&format!("{g}/eval_rates_heldout"), Data::F32(&v, shape))
            .unwrap()
    });
    let msg = result.unwrap_err();
    assert!(
        msg.contains("co-bps")
            && msg.contains("`eval_rates_heldout`")
            && msg.contains("negative rate -0.5 at index [3, 4, 5]"),
        "{msg}"
    );
}

#[test]
fn a_missing_required_key_names_the_file_and_key() {
    let (result, path, _tmp) =
        evaluate_edited("area2_bump-05ms-val", &["train_rates_heldin"], |_, _| {});
    let msg = result.unwrap_err();
    assert!(
        msg.contains(path.to_str().unwrap()) && msg.contains("area2_bump/train_rates_heldin"),
        "{msg}"
    );
}

#[test]
fn without_forward_rates_there_is_no_fp_bps_and_dmfc_needs_no_train_rates() {
    let (result, _, _tmp) = evaluate_edited(
        "dmfc_rsg-20ms-val",
        &[
            "eval_rates_heldin_forward",
            "eval_rates_heldout_forward",
            "train_rates_heldin",
            "train_rates_heldout",
        ],
        |_, _| {},
    );
    let report = result.unwrap();
    let keys: Vec<&str> = report.splits[0].1.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["co-bps", "tp corr", "psth R2"]);
}

#[test]
fn groups_missing_from_either_file_are_skipped() {
    // The submission's group has no eval_rates_heldout: nothing is scored, and no error.
    let (result, _, _tmp) =
        evaluate_edited("mc_maze_small-20ms-val", &["eval_rates_heldout"], |_, _| {});
    assert!(result.unwrap().splits.is_empty());
    // A submission scored against another dataset's target: no common group.
    let dir = fixtures();
    let results = evaluate_files(
        &dir.join("mc_rtt-20ms-val/eval_target.h5"),
        &dir.join("mc_maze-20ms-val/submission_truth.h5"),
    )
    .unwrap();
    assert!(results.is_empty());
}

#[test]
fn json_has_the_reference_nesting() {
    let dir = fixtures().join("mc_maze_small-20ms-val");
    let results = evaluate_files(
        &dir.join("eval_target.h5"),
        &dir.join("submission_smoothing.h5"),
    )
    .unwrap();
    let json: serde_json::Value =
        serde_json::from_str(&Report::from_results(&results).to_json()).unwrap();
    let split = &json[0]["mc_maze_scaling_20_split"];
    assert!(split["[100] co-bps"].is_f64() && split["[100] psth R2"].is_f64());
    assert_eq!(json.as_array().unwrap().len(), 1);
    assert_eq!(split.as_object().unwrap().len(), 3);
}
