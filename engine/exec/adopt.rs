//! Steps of a dead executor taken over by a resume: waiting for their process groups and
//! reading what their supervisor recorded.

use std::collections::BTreeMap;
use std::time::Duration;

use super::machine::ExitResult;
use super::mask::Masker;
use super::process;
use super::process::StepFiles;

/// A step of a dead executor taken over by a resume: its process group still runs (`pgid`),
/// or it already ended and its supervisor left the `result`.
pub struct Adopted {
    pub step: usize,
    pub attempt: u32,
    pub pgid: Option<u32>,
    pub result: Option<(ExitResult, BTreeMap<String, String>)>,
}

/// Waits for an adopted process group to end, then reads the status its supervisor wrote.
pub(super) async fn await_adopted(
    pgid: u32,
    files: &StepFiles,
    mask: &Masker,
) -> (ExitResult, BTreeMap<String, String>) {
    while files.recorded().1.is_none() && process::group_alive(pgid) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A live supervisor records the end the moment it reaps the step: give it that moment.
    for _ in 0..10 {
        if files.recorded().1.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    process::end_foreign_group(pgid).await;
    adopted_result(files, mask)
}

/// The outcome of a step whose executor died, from what its supervisor recorded.
pub fn adopted_result(files: &StepFiles, mask: &Masker) -> (ExitResult, BTreeMap<String, String>) {
    let result = match files.recorded().1 {
        Some(c) => ExitResult::Code(c),
        // Its supervisor died before it ended: it may have done all, some or none of its work.
        None => ExitResult::Unknown(
            "its process ended while no supervisor watched it: how it ended is not known".into(),
        ),
    };
    let (outputs, _) = process::take_outputs(&files.output, &files.log, mask);
    (result, outputs)
}
