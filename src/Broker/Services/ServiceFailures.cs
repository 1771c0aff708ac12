using Grpc.Core;

namespace HookBroker.Broker.Services;

/// <summary>
/// Maps failures to the status codes the proto documents: a refused request keeps its code and message; storage full
/// is RESOURCE_EXHAUSTED; storage closing under a call (shutdown) is UNAVAILABLE; anything else is logged and answered
/// INTERNAL, so a client never sees a stack trace and knows it may retry. The public service applies it in its own
/// methods (<see cref="HookBrokerService"/>), the admin service through <see cref="BrokerExceptionInterceptor"/>.
/// </summary>
internal static partial class ServiceFailures
{
    /// <summary>The status to answer with, or null to let the exception through (RpcException, the call's own cancellation).</summary>
    public static RpcException? Translate(Exception exception, ServerCallContext context, ILogger logger)
    {
        // Let through what is the transport's business: an RpcException, the call's own cancellation, and a client that
        // reset its stream (IOException while reading it); grpc-dotnet ends those calls itself.
        if (exception is RpcException or IOException || (exception is OperationCanceledException && context.CancellationToken.IsCancellationRequested))
        {
            return null;
        }

        var status = StatusMapping.ToStatus(exception, out var unexpected);
        if (unexpected)
        {
            LogUnexpected(logger, exception, context.Method);
        }

        return new RpcException(status);
    }

    [LoggerMessage(100, LogLevel.Error, "Unexpected failure in {Method}")]
    private static partial void LogUnexpected(ILogger logger, Exception exception, string method);
}
