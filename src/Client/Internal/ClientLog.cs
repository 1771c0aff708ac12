using Microsoft.Extensions.Logging;

namespace HookBroker.Client.Internal;

/// <summary>The client's log messages.</summary>
internal static partial class ClientLog
{
    [LoggerMessage(EventId = 1, Level = LogLevel.Warning, Message = "Raise of '{Label}' failed ({StatusCode}); retry {Attempt} in {Delay}")]
    public static partial void RetryingRaise(ILogger logger, string label, string statusCode, int attempt, TimeSpan delay);

    [LoggerMessage(EventId = 2, Level = LogLevel.Warning, Message = "The broker circuit opened for {BreakDuration} after repeated failures; raises fail fast until then")]
    public static partial void CircuitOpened(ILogger logger, TimeSpan breakDuration);

    [LoggerMessage(EventId = 3, Level = LogLevel.Information, Message = "The broker circuit closed: raises go through again")]
    public static partial void CircuitClosed(ILogger logger);

    [LoggerMessage(EventId = 4, Level = LogLevel.Debug, Message = "Opened a RaiseStream call for batched raises")]
    public static partial void RaiseStreamOpened(ILogger logger);

    [LoggerMessage(EventId = 5, Level = LogLevel.Warning, Message = "The RaiseStream call ended ({StatusCode}: {Detail}) with {Pending} raise(s) unanswered; they are retried")]
    public static partial void RaiseStreamEnded(ILogger logger, string statusCode, string detail, int pending);

    [LoggerMessage(EventId = 6, Level = LogLevel.Warning, Message = "The broker does not implement RaiseStream ({Detail}); raising unary from now on")]
    public static partial void RaiseStreamUnsupported(ILogger logger, string detail);

    [LoggerMessage(EventId = 7, Level = LogLevel.Debug, Message = "Writing to the RaiseStream call failed ({Error}); its pending raises are retried")]
    public static partial void RaiseStreamWriteFailed(ILogger logger, string error);

    [LoggerMessage(EventId = 8, Level = LogLevel.Warning, Message = "The RaiseStream call left its messages unanswered for {Stalled}; moving to a new call (the pending raises are retried)")]
    public static partial void RaiseStreamStalled(ILogger logger, TimeSpan stalled);
}
