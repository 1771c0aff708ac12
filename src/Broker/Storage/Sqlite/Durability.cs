namespace HookBroker.Broker.Storage.Sqlite;

/// <summary>What a confirmed write survives.</summary>
public enum Durability
{
    /// <summary>
    /// WAL with <c>synchronous=NORMAL</c>: a confirmed write survives a crash or SIGKILL of the broker process; the
    /// last commits may be lost on power loss or an OS crash. The default.
    /// </summary>
    Normal,

    /// <summary>WAL with <c>synchronous=FULL</c>: every commit is fsynced, so a confirmed write survives power loss.</summary>
    Fsync,
}
