using HookBroker.Broker.Storage;
using HookBroker.Broker.Storage.Memory;

namespace HookBroker.Broker.Tests.Storage;

/// <summary>The contract suite on the in-memory engine (nothing persists: the durability tests skip).</summary>
public sealed class MemoryHookStoreContractTests : HookStoreContractTests
{
    protected override ValueTask<IHookStore> CreateStoreAsync(string name) => ValueTask.FromResult<IHookStore>(new MemoryHookStore());
}
