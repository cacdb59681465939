//! Presentation: how the engine's records read to people, in words and (on a terminal) in
//! colour, and the observers that show them as a run goes (bars, plain lines, JSON lines).
//! Above the journal, whose records it shows; below the executor, which feeds the observers,
//! and the reports, which use its words.

pub mod describe;
pub mod observer;
pub mod paint;
pub mod visible;
