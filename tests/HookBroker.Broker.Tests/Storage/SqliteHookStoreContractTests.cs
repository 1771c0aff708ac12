using HookBroker.Broker.Storage;
using HookBroker.Broker.Storage.Sqlite;

namespace HookBroker.Broker.Tests.Storage;

/// <summary>The shared contract against the SQLite engine: a temp folder per test, deleted after it.</summary>
public sealed class SqliteHookStoreContractTests : HookStoreContractTests
{
    protected override bool SurvivesRestart => true;

    protected override ValueTask<IHookStore> CreateStoreAsync(string name) => ValueTask.FromResult(Open(name));

    protected override ValueTask<IHookStore> ReopenStoreAsync(string name) => ValueTask.FromResult(Open(name));

    protected override ValueTask DeleteStoreAsync(string name)
    {
        var folder = Folder(name);
        if (Directory.Exists(folder))
        {
            Directory.Delete(folder, recursive: true);
        }

        return ValueTask.CompletedTask;
    }

    private static IHookStore Open(string name) => new SqliteHookStore(new SqliteStoreOptions { DataPath = Folder(name) });

    private static string Folder(string name) => Path.Combine(Path.GetTempPath(), "hookbroker-tests", name);
}
