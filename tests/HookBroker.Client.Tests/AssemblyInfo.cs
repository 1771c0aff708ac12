// The broker tests start their own broker processes; one test at a time keeps timings predictable on a small machine.
[assembly: CollectionBehavior(DisableTestParallelization = true)]
