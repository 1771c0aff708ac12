using Microsoft.Extensions.Logging;

namespace HookBroker.Client.Internal;

/// <summary>The ASP.NET Core integration's log messages.</summary>
internal static partial class AppLog
{
    [LoggerMessage(EventId = 201, Level = LogLevel.Debug, Message = "Broker interest changed: {Count} pattern(s), version {Version}")]
    public static partial void InterestChanged(ILogger logger, int count, ulong version);

    [LoggerMessage(EventId = 202, Level = LogLevel.Warning, Message = "The broker's interest stream is down ({Reason}); retry {Attempt} in {Delay}")]
    public static partial void InterestReconnecting(ILogger logger, string reason, int attempt, TimeSpan delay);

    [LoggerMessage(EventId = 203, Level = LogLevel.Warning, Message = "Dropped {Count} default event(s) in the last {Interval} ({Reason}); see the metric hookbroker.client.default_events.dropped")]
    public static partial void DefaultEventsDropped(ILogger logger, long count, TimeSpan interval, string reason);

    [LoggerMessage(EventId = 204, Level = LogLevel.Warning, Message = "Sending {Count} default event(s) to the broker failed ({Reason}); retry {Attempt} in {Delay}")]
    public static partial void SendRetrying(ILogger logger, int count, string reason, int attempt, TimeSpan delay);

    [LoggerMessage(EventId = 205, Level = LogLevel.Warning, Message = "The broker refused default event '{Label}' ({Code}: {Detail})")]
    public static partial void DefaultEventRefused(ILogger logger, string label, int code, string detail);
}
