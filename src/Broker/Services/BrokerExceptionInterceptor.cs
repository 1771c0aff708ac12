using Grpc.Core;
using Grpc.Core.Interceptors;
using HookBroker.Broker.Core;

namespace HookBroker.Broker.Services;

/// <summary>Turns a refused request (<see cref="BrokerException"/>) into its gRPC status, for every service.</summary>
public sealed class BrokerExceptionInterceptor : Interceptor
{
    /// <inheritdoc />
    public override async Task<TResponse> UnaryServerHandler<TRequest, TResponse>(
        TRequest request, ServerCallContext context, UnaryServerMethod<TRequest, TResponse> continuation)
    {
        try
        {
            return await continuation(request, context);
        }
        catch (BrokerException ex)
        {
            throw ToRpc(ex);
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
        catch (BrokerException ex)
        {
            throw ToRpc(ex);
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
        catch (BrokerException ex)
        {
            throw ToRpc(ex);
        }
    }

    private static RpcException ToRpc(BrokerException ex) => new(new Status(ex.Code, ex.Message));
}
