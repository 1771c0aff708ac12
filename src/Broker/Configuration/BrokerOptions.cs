using HookBroker.Broker.Storage.Redis;

namespace HookBroker.Broker.Configuration;

/// <summary>The broker's settings: section "HookBroker" of appsettings.json, or HOOKBROKER__* environment variables.</summary>
public sealed class BrokerOptions
{
    /// <summary>The configuration section.</summary>
    public const string Section = "HookBroker";

    /// <summary>Address both ports listen on. Default 127.0.0.1 (loopback only: the broker has no authentication yet).</summary>
    public string ListenAddress { get; set; } = "127.0.0.1";

    /// <summary>Port of the gRPC endpoint (plaintext HTTP/2). Default 5000.</summary>
    public int GrpcPort { get; set; } = 5000;

    /// <summary>Port of the plain HTTP/1.1 endpoint serving /healthz. Default 5001.</summary>
    public int HttpPort { get; set; } = 5001;

    /// <summary>Storage engine: Sqlite (embedded, durable; default) or Memory (nothing survives a restart).</summary>
    public StorageEngine Storage { get; set; } = StorageEngine.Sqlite;

    /// <summary>Folder of the embedded store. Default ./data.</summary>
    public string DataPath { get; set; } = "./data";

    /// <summary>Normal (default): a stored event survives a SIGKILL of the broker. Fsync: it also survives power loss.</summary>
    public Durability Durability { get; set; } = Durability.Normal;

    /// <summary>How long an idempotency key is remembered. Default 10 minutes.</summary>
    public TimeSpan IdempotencyWindow { get; set; } = TimeSpan.FromMinutes(10);

    /// <summary>Largest args object, serialized. Default 256 KiB.</summary>
    public int MaxArgsBytes { get; set; } = 256 * 1024;

    /// <summary>Deepest nesting of args. Default 32.</summary>
    public int MaxArgsDepth { get; set; } = 32;

    /// <summary>Max in-flight of a worker that asks for 0. Default 100.</summary>
    public int DefaultMaxInFlight { get; set; } = 100;

    /// <summary>Idle time after which a subscriber stream gets a heartbeat. Default 15 s.</summary>
    public TimeSpan HeartbeatInterval { get; set; } = TimeSpan.FromSeconds(15);

    /// <summary>How often lease expiry, retention and idempotency housekeeping runs. Default 1 s.</summary>
    public TimeSpan MaintenanceInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>How long a graceful stop waits for in-flight calls. Default 10 s.</summary>
    public TimeSpan ShutdownTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Policy of every group without its own entry in <see cref="Groups"/>.</summary>
    public GroupPolicyOptions Defaults { get; set; } = new();

    /// <summary>The Redis engine's connection and layout (used when <see cref="Storage"/> is Redis).</summary>
    public RedisStoreOptions Redis { get; set; } = new();

    /// <summary>Per-group policy overrides by group name; unset fields take <see cref="Defaults"/>.</summary>
    public Dictionary<string, GroupPolicyOptions> Groups { get; set; } = new(StringComparer.Ordinal);
}

/// <summary>Which storage engine the broker uses.</summary>
public enum StorageEngine
{
    /// <summary>Embedded SQLite under <see cref="BrokerOptions.DataPath"/>.</summary>
    Sqlite,
    /// <summary>In memory: for tests and throwaway runs.</summary>
    Memory,
    /// <summary>Redis or Redis Cluster (<see cref="BrokerOptions.Redis"/>): several stateless broker nodes share it.</summary>
    Redis,
}

/// <summary>What a stored event survives.</summary>
public enum Durability
{
    /// <summary>A crash of the broker process (SQLite WAL, synchronous=NORMAL).</summary>
    Normal,
    /// <summary>Power loss too (SQLite WAL, synchronous=FULL).</summary>
    Fsync,
}

/// <summary>A group's delivery policy. In <see cref="BrokerOptions.Defaults"/> unset fields take the documented defaults.</summary>
public sealed class GroupPolicyOptions
{
    /// <summary>How long a worker holds a delivery before it is redelivered. Default 30 s.</summary>
    public TimeSpan? AckDeadline { get; set; }

    /// <summary>Attempts before an event goes to dead letters. Default 5.</summary>
    public int? MaxAttempts { get; set; }

    /// <summary>First retry delay after a failure; doubles each attempt, with jitter. Default 1 s.</summary>
    public TimeSpan? BackoffInitial { get; set; }

    /// <summary>Longest retry delay. Default 10 minutes.</summary>
    public TimeSpan? BackoffMax { get; set; }

    /// <summary>How long an undelivered event waits before it is dead-lettered as expired. Default 7 days.</summary>
    public TimeSpan? Retention { get; set; }

    /// <summary>Most events waiting in the group; raises beyond fail with RESOURCE_EXHAUSTED. Default 10,000,000.</summary>
    public long? MaxBacklog { get; set; }
}
