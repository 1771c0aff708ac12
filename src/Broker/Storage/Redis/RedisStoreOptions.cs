namespace HookBroker.Broker.Storage.Redis;

/// <summary>Options of the Redis engine (<see cref="RedisHookStore"/>), shared by every broker node on one Redis.</summary>
public sealed class RedisStoreOptions
{
    /// <summary>Most partitions a keyspace may have.</summary>
    public const int MaxPartitions = 256;

    /// <summary>
    /// The StackExchange.Redis configuration string: <c>host:port</c>, or several nodes of a Redis Cluster
    /// (<c>h1:7000,h2:7001,h3:7002</c>), plus options such as <c>password=…</c>. Default <c>127.0.0.1:6379</c>.
    /// </summary>
    public string Configuration { get; set; } = "127.0.0.1:6379";

    /// <summary>Every key starts with it, so several brokers (or tests) can share one Redis. Default <c>hookbroker</c>.</summary>
    public string KeyPrefix { get; set; } = "hookbroker";

    /// <summary>
    /// How many partitions events are spread over (each one hash slot, so a Redis Cluster spreads them over its
    /// masters). An event goes to the partition of its ordering key, else of its idempotency key, else of its label.
    /// Fixed when the keyspace is first used; null takes the stored value, else 1 on a single Redis and 16 on a cluster.
    /// </summary>
    public int? Partitions { get; set; }

    /// <summary>
    /// A broker node silent for this long (no housekeeping pass) is taken as dead: the leases its workers held return to
    /// pending at once instead of at their ack deadline. Default 10 s.
    /// </summary>
    public TimeSpan NodeTimeout { get; set; } = TimeSpan.FromSeconds(10);

    internal void Validate()
    {
        if (string.IsNullOrWhiteSpace(Configuration))
        {
            throw new ArgumentException("Redis.Configuration must name at least one Redis endpoint (host:port).", nameof(Configuration));
        }

        if (string.IsNullOrWhiteSpace(KeyPrefix) || KeyPrefix.IndexOfAny(['{', '}', ' ', '\n']) >= 0)
        {
            throw new ArgumentException($"Redis.KeyPrefix must be non-empty without braces or spaces (got '{KeyPrefix}').", nameof(KeyPrefix));
        }

        if (Partitions is < 1 or > MaxPartitions)
        {
            throw new ArgumentException($"Redis.Partitions must be between 1 and {MaxPartitions} (got {Partitions}).", nameof(Partitions));
        }

        if (NodeTimeout <= TimeSpan.Zero)
        {
            throw new ArgumentException($"Redis.NodeTimeout must be positive (got {NodeTimeout}).", nameof(NodeTimeout));
        }
    }
}
