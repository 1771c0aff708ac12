using System.Net;
using HookBroker.Broker.Configuration;
using HookBroker.Broker.Services;
using Microsoft.AspNetCore.Server.Kestrel.Core;

// appsettings.json sits beside the binary; the data folder (HookBroker:DataPath) stays relative to the working folder.
var builder = WebApplication.CreateBuilder(new WebApplicationOptions { Args = args, ContentRootPath = AppContext.BaseDirectory });
builder.Services.AddHookBrokerServer(builder.Configuration);

// Ports and address come from the same validated settings (HookBroker:ListenAddress, GrpcPort, HttpPort).
var listen = builder.Configuration.GetSection(BrokerOptions.Section).Get<BrokerOptions>() ?? new BrokerOptions();
builder.WebHost.ConfigureKestrel(kestrel =>
{
    if (!IPAddress.TryParse(listen.ListenAddress, out var address))
    {
        throw new InvalidOperationException($"HookBroker:ListenAddress '{listen.ListenAddress}' is not an IP address (e.g. 127.0.0.1 or 0.0.0.0)");
    }

    // gRPC: plaintext HTTP/2 (prior knowledge), as grpcurl -plaintext and buf curl --http2-prior-knowledge expect.
    kestrel.Listen(address, listen.GrpcPort, o => o.Protocols = HttpProtocols.Http2);
    // Plain HTTP/1.1 for /healthz (load balancers, container health checks).
    kestrel.Listen(address, listen.HttpPort, o => o.Protocols = HttpProtocols.Http1);
});
builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = listen.ShutdownTimeout);

var app = builder.Build();
app.MapGrpcService<HookBrokerService>();
app.MapGrpcService<HookBrokerAdminService>();
app.MapGrpcReflectionService();
app.MapGrpcHealthChecksService();
app.MapGet("/healthz", () => Results.Text("ok"));
app.Run();

/// <summary>The broker's entry point (public for in-process tests).</summary>
public partial class Program;
