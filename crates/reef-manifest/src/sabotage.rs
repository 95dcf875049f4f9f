//! Test-only switches that turn one safety rule off each, so the
//! simulation and the schedule tests can show that the rule is what stands
//! between a schedule and a lost acknowledged write or a missing object.
//! Every field defaults to `false`; nothing outside tests sets one.

/// Safety rules to switch off. Hidden from the docs on purpose.
#[doc(hidden)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sabotage {
    /// Writers acknowledge without reading HEAD after their WAL put.
    pub skip_fence: bool,
    /// `commit_change` commits changes based below the GC floor.
    pub skip_floor_check: bool,
    /// Catching up trusts the manifest read before the WAL, so a stray
    /// record in a freed slot is applied.
    pub apply_strays: bool,
    /// GC deletes folded WAL without first making HEAD name the manifest
    /// that folded it.
    pub gc_skips_head_fence: bool,
    /// A lease is not checked against the GC floor after it is placed.
    pub skip_pin_check: bool,
}
