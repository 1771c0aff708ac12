using Microsoft.Extensions.Logging;

namespace HookBroker.Broker.Core;

/// <summary>The broker core's log messages, with fixed event ids.</summary>
internal static partial class BrokerLog
{
    [LoggerMessage(1, LogLevel.Information, "Broker started: {Groups} groups loaded from {Engine} storage")]
    public static partial void Started(ILogger logger, int groups, string engine);

    [LoggerMessage(2, LogLevel.Information, "Worker {WorkerId} ({WorkerName}) subscribed group {Group} to {Patterns} with max in-flight {MaxInFlight}")]
    public static partial void WorkerSubscribed(ILogger logger, string workerId, string workerName, string group, string patterns, int maxInFlight);

    [LoggerMessage(3, LogLevel.Information, "Worker {WorkerId} of group {Group} left; {Released} leases released for redelivery")]
    public static partial void WorkerLeft(ILogger logger, string workerId, string group, int released);

    [LoggerMessage(4, LogLevel.Error, "Leasing for group {Group} failed; retrying in 1 s")]
    public static partial void LeaseFailed(ILogger logger, Exception exception, string group);

    [LoggerMessage(5, LogLevel.Error, "Housekeeping (lease expiry, retention, idempotency keys) failed; retrying at the next interval")]
    public static partial void MaintenanceFailed(ILogger logger, Exception exception);

    [LoggerMessage(6, LogLevel.Error, "Reloading groups from storage failed")]
    public static partial void GroupReloadFailed(ILogger logger, Exception exception);

    [LoggerMessage(7, LogLevel.Information, "Broker stopping: ending {Streams} subscriber streams with UNAVAILABLE")]
    public static partial void Stopping(ILogger logger, int streams);

    [LoggerMessage(8, LogLevel.Information, "Group {Group} deleted")]
    public static partial void GroupDeleted(ILogger logger, string group);

    [LoggerMessage(9, LogLevel.Information, "Redrove {Count} dead letters of group {Group}")]
    public static partial void Redriven(ILogger logger, string group, int count);

    [LoggerMessage(10, LogLevel.Debug, "Housekeeping: {Expired} leases expired, {Retained} events expired by retention, {Keys} idempotency keys forgotten")]
    public static partial void Maintained(ILogger logger, int expired, int retained, int keys);

    [LoggerMessage(11, LogLevel.Error, "Releasing the leases of worker {WorkerId} (group {Group}) failed; they will be redelivered when their leases expire")]
    public static partial void ReleaseFailed(ILogger logger, Exception exception, string workerId, string group);
}
