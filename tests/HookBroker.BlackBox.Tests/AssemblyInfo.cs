// Each black-box test starts its own broker process; running them one at a time keeps timings predictable on a
// two-core CI machine (the crash test alone drives thousands of concurrent raises).
[assembly: CollectionBehavior(DisableTestParallelization = true)]
