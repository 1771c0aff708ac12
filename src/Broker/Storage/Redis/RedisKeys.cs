using System.Globalization;
using StackExchange.Redis;

namespace HookBroker.Broker.Storage.Redis;

/// <summary>
/// Key names. Node-wide keys share the <c>{prefix}</c> hash tag; each partition's keys share <c>{prefix:n}</c>, so a
/// script touching one partition stays in one hash slot of a Redis Cluster.
/// </summary>
internal sealed class RedisKeys(string prefix)
{
    /// <summary>Group name -> patterns joined by newlines.</summary>
    public RedisKey Catalog { get; } = $"{{{prefix}}}:groups";

    /// <summary>Fixed facts of the keyspace (partition count).</summary>
    public RedisKey Meta { get; } = $"{{{prefix}}}:meta";

    /// <summary>Broker node -> last heartbeat (µs) or "gone".</summary>
    public RedisKey Nodes { get; } = $"{{{prefix}}}:nodes";

    /// <summary>Where engines announce changes to the other broker nodes.</summary>
    public RedisChannel Channel { get; } = RedisChannel.Literal($"{prefix}:notify");

    /// <summary>The base key of a partition (every key of the partition starts with it).</summary>
    public RedisKey Partition(int partition) => $"{{{prefix}:{partition.ToString(CultureInfo.InvariantCulture)}}}";

    /// <summary>The set of groups a partition knows.</summary>
    public RedisKey PartitionGroups(int partition) => Partition(partition).Append(":groups");
}
