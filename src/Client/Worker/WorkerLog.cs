using Microsoft.Extensions.Logging;

namespace HookBroker.Client.Internal;

/// <summary>The worker host's log messages.</summary>
internal static partial class WorkerLog
{
    [LoggerMessage(EventId = 101, Level = LogLevel.Information, Message = "Subscribed group '{Group}' to {Labels} as worker {WorkerId} (max in flight {MaxInFlight}, ack deadline {AckDeadline})")]
    public static partial void Subscribed(ILogger logger, string group, IEnumerable<string> labels, string workerId, int maxInFlight, TimeSpan ackDeadline);

    [LoggerMessage(EventId = 102, Level = LogLevel.Warning, Message = "The subscription of group '{Group}' ended ({Reason}); reconnecting")]
    public static partial void StreamEnded(ILogger logger, string group, string reason);

    [LoggerMessage(EventId = 103, Level = LogLevel.Warning, Message = "Could not subscribe group '{Group}' ({Reason}); retry {Attempt} in {Delay}")]
    public static partial void Reconnecting(ILogger logger, string group, string? reason, int attempt, TimeSpan delay);

    [LoggerMessage(EventId = 104, Level = LogLevel.Warning, Message = "Hook for '{Label}' (event {EventId}, attempt {Attempt}) failed; nacked")]
    public static partial void HandlerFailed(ILogger logger, Exception exception, string label, string eventId, int attempt);

    [LoggerMessage(EventId = 105, Level = LogLevel.Warning, Message = "Hook for '{Label}' (event {EventId}) cannot bind its args; rejected: {Error}")]
    public static partial void BindingFailed(ILogger logger, string label, string eventId, string error);

    [LoggerMessage(EventId = 106, Level = LogLevel.Warning, Message = "The broker answered {Kind} of delivery {DeliveryId} with {Status}: {Message}")]
    public static partial void SettlementNotConfirmed(ILogger logger, string kind, string deliveryId, string status, string message);

    [LoggerMessage(EventId = 107, Level = LogLevel.Information, Message = "Stopping group '{Group}': finishing {Count} running handler(s)")]
    public static partial void Draining(ILogger logger, string group, int count);

    [LoggerMessage(EventId = 108, Level = LogLevel.Warning, Message = "Handlers of group '{Group}' still ran after the drain timeout of {DrainTimeout}; nacked {Count} delivery(ies)")]
    public static partial void DrainTimedOut(ILogger logger, string group, TimeSpan drainTimeout, int count);

    [LoggerMessage(EventId = 109, Level = LogLevel.Critical, Message = "The broker refused the subscription of group '{Group}' ({StatusCode}: {Detail}); the worker stops")]
    public static partial void Refused(ILogger logger, string group, Grpc.Core.StatusCode statusCode, string detail);

    [LoggerMessage(EventId = 110, Level = LogLevel.Debug, Message = "Hook for '{Label}' (event {EventId}, attempt {Attempt}) handled")]
    public static partial void Handled(ILogger logger, string label, string eventId, int attempt);
}
