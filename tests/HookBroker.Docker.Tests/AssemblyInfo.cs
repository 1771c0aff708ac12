using HookBroker.Docker.Tests.Infrastructure;

// The images are built once per run (an assembly fixture); the containers run one at a time, which keeps timings
// predictable on a two-core CI machine and keeps image builds from competing with the tests.
[assembly: CollectionBehavior(DisableTestParallelization = true)]
[assembly: AssemblyFixture(typeof(BrokerImage))]
