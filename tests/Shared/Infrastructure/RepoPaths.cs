using System.Reflection;

namespace HookBroker.Tests.Infrastructure;

/// <summary>Where the repository, the build outputs the tests start, and the npm-installed tools are.</summary>
internal static class RepoPaths
{
    private static readonly Lazy<string> LazyRoot = new(FindRoot);

    /// <summary>The folder holding HookBroker.sln, found by walking up from the test assembly.</summary>
    public static string Root => LazyRoot.Value;

    /// <summary>The build configuration of this test assembly; the broker is started from the same one.</summary>
    public static string Configuration { get; } =
        typeof(RepoPaths).Assembly.GetCustomAttribute<AssemblyConfigurationAttribute>()?.Configuration
        ?? throw new InvalidOperationException("The test assembly has no AssemblyConfigurationAttribute.");

    /// <summary>The target framework folder name of this test assembly (bin/&lt;Configuration&gt;/&lt;tfm&gt;/).</summary>
    private static string TargetFramework => new DirectoryInfo(AppContext.BaseDirectory).Name;

    /// <summary>The broker built by the test project's reference (ReferenceOutputAssembly=false).</summary>
    public static string BrokerDll =>
        Path.Combine(Root, "src", "Broker", "bin", Configuration, TargetFramework, "HookBroker.Broker.dll");

    /// <summary>The worker sample (the email sender), built by the test project's reference.</summary>
    public static string WorkerSampleDll =>
        Path.Combine(Root, "src", "Worker.Sample", "bin", Configuration, TargetFramework, "HookBroker.Worker.Sample.dll");

    /// <summary>The web sample, built by the test project's reference.</summary>
    public static string WebSampleDll =>
        Path.Combine(Root, "src", "Web.Sample", "bin", Configuration, TargetFramework, "HookBroker.Web.Sample.dll");

    /// <summary>buf, installed from npm by scripts/test.sh.</summary>
    public static string Buf => Path.Combine(Root, ".artifacts", "tools", "node_modules", ".bin", "buf");

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "HookBroker.sln")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException($"No HookBroker.sln above {AppContext.BaseDirectory}.");
    }
}
