using Microsoft.Extensions.Logging;

namespace HookBroker.Broker.Storage.Redis;

/// <summary>The Redis engine's log messages.</summary>
internal static partial class RedisLog
{
    [LoggerMessage(EventId = 300, Level = LogLevel.Information, Message = "Redis engine started as node {Node} on {Configuration}: {Partitions} partition(s), cluster {IsCluster}")]
    public static partial void Started(ILogger logger, string node, string configuration, int partitions, bool isCluster);

    [LoggerMessage(EventId = 301, Level = LogLevel.Warning, Message = "Broker node(s) {Nodes} shut down or went silent: {Leases} lease(s) they held returned to pending")]
    public static partial void NodesGone(ILogger logger, string nodes, int leases);

    [LoggerMessage(EventId = 302, Level = LogLevel.Warning, Message = "Could not handle a notice from another broker node")]
    public static partial void NoticeFailed(ILogger logger, Exception exception);

    [LoggerMessage(EventId = 303, Level = LogLevel.Information, Message = "Reconnected to Redis at {EndPoint}: every group is checked for work again")]
    public static partial void Reconnected(ILogger logger, System.Net.EndPoint? endPoint);

    [LoggerMessage(EventId = 304, Level = LogLevel.Warning, Message = "Node {Node} could not mark itself gone in Redis on shutdown; its leases return at the node timeout")]
    public static partial void LeaveFailed(ILogger logger, string node, Exception exception);
}
