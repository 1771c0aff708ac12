namespace HookBroker.Broker.Storage.Redis;

/// <summary>
/// The engine's Lua scripts (embedded resources under <c>Storage/Redis/Scripts</c>). Each partition script runs
/// atomically in one hash slot; the shared helpers of <c>common.lua</c> are prepended to every partition script.
/// StackExchange.Redis sends them by SHA (EVALSHA) once a server knows them.
/// </summary>
internal static class RedisScripts
{
    private static readonly string Common = Read("common.lua");

    public static readonly string Append = Partition("append.lua");
    public static readonly string Lease = Partition("lease.lua");
    public static readonly string Settle = Partition("settle.lua");
    public static readonly string Release = Partition("release.lua");
    public static readonly string Expire = Partition("expire.lua");
    public static readonly string Recover = Partition("recover.lua");
    public static readonly string Outcomes = Partition("outcomes.lua");
    public static readonly string Stats = Partition("stats.lua");
    public static readonly string DeadLetters = Partition("dead_letters.lua");
    public static readonly string Redrive = Partition("redrive.lua");
    public static readonly string DeleteGroup = Partition("delete_group.lua");
    public static readonly string AddPatterns = Read("add_patterns.lua");
    public static readonly string RemovePatterns = Read("remove_patterns.lua");

    private static string Partition(string name) => Common + "\n" + Read(name);

    private static string Read(string name)
    {
        var assembly = typeof(RedisScripts).Assembly;
        var resource = assembly.GetManifestResourceNames().Single(n => n.EndsWith(".Scripts." + name, StringComparison.Ordinal));
        using var stream = assembly.GetManifestResourceStream(resource)
            ?? throw new InvalidOperationException($"Embedded script {name} is missing.");
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd();
    }
}
