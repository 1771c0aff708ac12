using System.Collections.Concurrent;
using System.Net;
using Grpc.Core;
using Grpc.Net.Client;
using HookBroker.Protocol.V1;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace HookBroker.Client.Tests.Infrastructure;

/// <summary>
/// A gRPC pass-through in the test process, between the SDK and a real broker, that counts what crosses the wire:
/// RaiseStream calls, their request messages and items, and unary Raise calls. It proxies Raise and RaiseStream only
/// (workers and admin calls go to the broker directly). With <see cref="RaiseStreamUnimplemented"/> it plays an older
/// broker that answers RaiseStream with UNIMPLEMENTED. <see cref="Raised"/> keeps every raise it forwarded, read with the
/// public messages (as any client generated from the proto sees them).
/// </summary>
internal sealed class CountingProxy : IAsyncDisposable
{
    private readonly WebApplication app;
    private readonly GrpcChannel upstream;
    private long streamCalls;
    private long streamMessages;
    private long streamItems;
    private long unaryRaises;
    private volatile TaskCompletionSource? answersHeld;

    private CountingProxy(WebApplication app, GrpcChannel upstream, Uri address)
    {
        this.app = app;
        this.upstream = upstream;
        Address = address;
    }

    public Uri Address { get; }

    public bool RaiseStreamUnimplemented { get; set; }

    public long StreamCalls => Interlocked.Read(ref streamCalls);

    public long StreamMessages => Interlocked.Read(ref streamMessages);

    public long StreamItems => Interlocked.Read(ref streamItems);

    public long UnaryRaises => Interlocked.Read(ref unaryRaises);

    /// <summary>Every raise forwarded (unary and stream items), in the order they arrived.</summary>
    public ConcurrentQueue<RaiseRequest> Raised { get; } = new();

    /// <summary>Holds back every RaiseStream answer (the broker's, already received) until <see cref="ReleaseAnswers"/>.</summary>
    public void HoldAnswers() => answersHeld = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Lets the answers held by <see cref="HoldAnswers"/> through, and every later one.</summary>
    public void ReleaseAnswers() => answersHeld?.TrySetResult();

    private HookBroker.Protocol.V1.HookBroker.HookBrokerClient Upstream => new(upstream);

    public static async Task<CountingProxy> StartAsync(BrokerProcess broker, CancellationToken cancellationToken)
    {
        var port = FreePorts.Reserve(1)[0];
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k => k.Listen(IPAddress.Loopback, port, l => l.Protocols = HttpProtocols.Http2));
        builder.Services.AddGrpc();
        var holder = new ProxyHolder();
        builder.Services.AddSingleton(holder);
        var app = builder.Build();
        app.MapGrpcService<ProxyService>();
        var proxy = new CountingProxy(app, GrpcChannel.ForAddress(broker.GrpcAddress), new Uri($"http://127.0.0.1:{port}"));
        holder.Proxy = proxy;
        await app.StartAsync(cancellationToken);
        return proxy;
    }

    public async ValueTask DisposeAsync()
    {
        using (var stop = new CancellationTokenSource(TimeSpan.FromSeconds(5)))
        {
            await app.StopAsync(stop.Token);
        }

        await app.DisposeAsync();
        upstream.Dispose();
    }

    private sealed class ProxyHolder
    {
        public CountingProxy Proxy { get; set; } = null!;
    }

    private sealed class ProxyService(ProxyHolder holder) : HookBroker.Protocol.V1.HookBroker.HookBrokerBase
    {
        public override async Task<RaiseResponse> Raise(RaiseRequest request, ServerCallContext context)
        {
            var proxy = holder.Proxy;
            Interlocked.Increment(ref proxy.unaryRaises);
            proxy.Raised.Enqueue(request);
            return await proxy.Upstream.RaiseAsync(request, deadline: context.Deadline, cancellationToken: context.CancellationToken);
        }

        public override async Task RaiseStream(
            IAsyncStreamReader<RaiseStreamRequest> requestStream, IServerStreamWriter<RaiseStreamResponse> responseStream, ServerCallContext context)
        {
            var proxy = holder.Proxy;
            if (proxy.RaiseStreamUnimplemented)
            {
                throw new RpcException(new Status(StatusCode.Unimplemented, "RaiseStream is not served here (test proxy)."));
            }

            Interlocked.Increment(ref proxy.streamCalls);
            using var call = proxy.Upstream.RaiseStream(cancellationToken: context.CancellationToken);
            var forward = Task.Run(async () =>
            {
                await foreach (var message in requestStream.ReadAllAsync(context.CancellationToken))
                {
                    Interlocked.Increment(ref proxy.streamMessages);
                    Interlocked.Add(ref proxy.streamItems, message.Items.Count);
                    foreach (var item in message.Items)
                    {
                        proxy.Raised.Enqueue(item.Raise);
                    }

                    await call.RequestStream.WriteAsync(message, context.CancellationToken);
                }

                await call.RequestStream.CompleteAsync();
            });
            await foreach (var response in call.ResponseStream.ReadAllAsync(context.CancellationToken))
            {
                if (proxy.answersHeld is { } held)
                {
                    await held.Task.WaitAsync(context.CancellationToken);
                }

                await responseStream.WriteAsync(response, context.CancellationToken);
            }

            await forward;
        }
    }
}
