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
}
