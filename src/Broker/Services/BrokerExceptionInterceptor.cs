using Grpc.Core;
using Grpc.Core.Interceptors;

namespace HookBroker.Broker.Services;

/// <summary>
/// Maps failures to the status codes the proto documents, for every service: a refused request keeps its code and
/// message; storage full is RESOURCE_EXHAUSTED; storage closing under a call (shutdown) is UNAVAILABLE; anything else
/// is logged and answered INTERNAL, so a client never sees a stack trace and knows it may retry.
/// </summary>
public sealed partial class BrokerExceptionInterceptor(ILogger<BrokerExceptionInterceptor> logger) : Interceptor
{
    /// <inheritdoc />
    public override async Task<TResponse> UnaryServerHandler<TRequest, TResponse>(
        TRequest request, ServerCallContext context, UnaryServerMethod<TRequest, TResponse> continuation)
    {
        try
        {
            return await continuation(request, context);
        }
        catch (Exception ex) when (Translate(ex, context) is { } status)
        {
            throw status;
        }
    }

    /// <inheritdoc />
    public override async Task DuplexStreamingServerHandler<TRequest, TResponse>(
        IAsyncStreamReader<TRequest> requestStream, IServerStreamWriter<TResponse> responseStream, ServerCallContext context, DuplexStreamingServerMethod<TRequest, TResponse> continuation)
    {
        try
        {
            await continuation(requestStream, responseStream, context);
        }
        catch (Exception ex) when (Translate(ex, context) is { } status)
        {
            throw status;
        }
    }

    /// <inheritdoc />
    public override async Task ServerStreamingServerHandler<TRequest, TResponse>(
        TRequest request, IServerStreamWriter<TResponse> responseStream, ServerCallContext context, ServerStreamingServerMethod<TRequest, TResponse> continuation)
    {
        try
        {
            await continuation(request, responseStream, context);
        }
        catch (Exception ex) when (Translate(ex, context) is { } status)
        {
            throw status;
        }
    }

    /// <summary>The status to answer with, or null to let the exception through (RpcException, the call's own cancellation).</summary>
    private RpcException? Translate(Exception exception, ServerCallContext context)
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
